"""Bailando motion VQ-VAE: shapes, EMA codebook, losses, stage 2 (tiny sizes, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist

from danceba.config import ConfigError, build_dataclass
from danceba.models.vqvae import (
    VQVAE,
    EMACodebook,
    SepVQVAE,
    SepVQVAER,
    count_parameters,
    motion_l1_losses,
    root_velocity_losses,
    vqvae_loss_fn,
)
from danceba.models.vqvae_config import VQVAEConfig
from danceba.motion.bailando_layout import SMPL_DOWN, SMPL_UP, merge_body, split_body, with_root_velocity
from tests.tiny_models import TINY_VQVAE

TINY = TINY_VQVAE


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _motion(batch: int = 2, frames: int = 240, seed: int = 0) -> torch.Tensor:
    """Smooth random Bailando-layout motion (B, T, 72)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 4 * np.pi, frames)[None, :, None]
    phase = torch.rand(batch, 1, 72, generator=g) * 6.28
    amp = 0.1 + 0.2 * torch.rand(batch, 1, 72, generator=g)
    return amp * torch.sin(t + phase)


def _trained_stage1(steps: int = 1) -> SepVQVAE:
    torch.manual_seed(0)
    model = SepVQVAE(TINY)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = _motion()
    for _ in range(steps):
        optimiser.zero_grad()
        model(x)[1]["loss"].backward()
        optimiser.step()
    return model.eval()


# ---------------------------------------------------------------------------------------------- shapes


def test_shapes_240_frames_give_30_codes() -> None:
    model = _trained_stage1()
    x = _motion()
    recon, terms = model.train()(x)
    assert recon.shape == (2, 240, 72)
    up, down = model.eval().encode(x)
    assert up.shape == down.shape == (2, 30)
    assert up.dtype == torch.long
    assert model.decode(up, down).shape == (2, 240, 72)
    assert {"loss", "up/recon", "down/commit", "down/perplexity"} <= set(terms)


def test_frames_not_divisible_by_8_raise() -> None:
    model = _trained_stage1()
    with pytest.raises(ValueError, match="multiple of 8"):
        model.encode(_motion(frames=100))
    with pytest.raises(ValueError, match=r"\(B, T, 72\)"):
        model.encode(torch.zeros(1, 240, 69))


def test_uninitialised_codebook_refuses_to_encode() -> None:
    model = SepVQVAE(TINY).eval()
    with pytest.raises(RuntimeError, match="not initialised"):
        model.encode(_motion())


def test_body_split_round_trip() -> None:
    x = _motion()
    up, down = split_body(x)
    assert up.shape[-1] == 3 * len(SMPL_UP) == 45 and down.shape[-1] == 3 * len(SMPL_DOWN) == 27
    assert torch.equal(down[..., :3], x[..., :3])  # root leads the lower half
    assert torch.equal(up[..., :3], x[..., 9:12])  # joint 3 (belly) leads the upper half
    assert torch.equal(merge_body(up, down), x)


def test_paper_size_parameter_count() -> None:
    with torch.device("meta"):
        stage1, stage2 = SepVQVAE(VQVAEConfig()), SepVQVAER(VQVAEConfig())
    assert count_parameters(stage1) == 51_683_400
    assert count_parameters(stage2, trainable_only=True) == 13_385_219  # the root decoder alone
    dilations = [
        m.dilation[0] for m in stage1.vqvae_up.decoder.modules() if getattr(m, "kernel_size", 0) == (3,)
    ]
    assert dilations[1:4] == [9, 3, 1]  # after the input conv: the first decoder Resnet1D, reversed
    dilations = [
        m.dilation[0] for m in stage1.vqvae_up.encoder.modules() if getattr(m, "kernel_size", 0) == (3,)
    ]
    assert dilations[:3] == [1, 3, 9]


def test_config_validation_and_loader() -> None:
    assert VQVAEConfig().hop_length == 8 and VQVAEConfig(down_t=2).hop_length == 4
    with pytest.raises(ValueError, match="stride_t must be even"):
        VQVAEConfig(stride_t=3)
    with pytest.raises(ValueError, match="mu"):
        VQVAEConfig(mu=1.0)
    loaded = build_dataclass(VQVAEConfig, {"width": 32, "depth": 2, "emb_width": 32, "l_bins": 64})
    assert loaded == TINY
    with pytest.raises(ConfigError, match="unknown key"):
        build_dataclass(VQVAEConfig, {"codebook_size": 64})


# ---------------------------------------------------------------------------------------------- codebook


def test_codebook_initialised_from_first_batch() -> None:
    torch.manual_seed(0)
    book = EMACodebook(l_bins=4, emb_width=3)
    assert not bool(book.initialised)
    x = torch.randn(2, 5, 3)  # 10 vectors >= 4 codes: no tiling noise
    codes, quantised, _, metrics = book(x)
    assert bool(book.initialised)
    rows = x.reshape(-1, 3)
    # the first quantisation uses the fresh codebook: 4 of the batch's own vectors
    for vector in quantised.reshape(-1, 3):
        assert torch.isclose(vector[None], rows).all(-1).any()
    assert len(codes.unique()) == 4 and metrics["usage"].item() == 4
    # the EMA step that followed moved each code toward the mean of its assigned vectors
    flat_codes, flat_quantised = codes.reshape(-1), quantised.reshape(-1, 3)
    for k in range(4):
        assigned = rows[flat_codes == k]
        initial = flat_quantised[flat_codes == k][0]
        expected = (0.99 * initial + 0.01 * assigned.sum(0)) / (0.99 + 0.01 * len(assigned))
        assert torch.allclose(book.codebook[k], expected, atol=1e-6)


def test_codebook_update_under_torch_distributed(tmp_path) -> None:
    """The all-reduce / broadcast path (one gloo process) gives the same codebook as the plain path."""
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1))
    books = []
    for distributed in (False, True):
        torch.manual_seed(0)
        if distributed:
            store = dist.FileStore(str(tmp_path / "store"), 1)
            dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        try:
            book = EMACodebook(l_bins=8, emb_width=3)
            book(x)
            book(x + 0.1)
            books.append(book.codebook.clone())
        finally:
            if distributed:
                dist.destroy_process_group()
    assert torch.equal(books[0], books[1])


def test_straight_through_value_and_gradient() -> None:
    torch.manual_seed(0)
    book = EMACodebook(l_bins=8, emb_width=4)
    book(torch.randn(1, 16, 4))  # initialise
    x = torch.randn(2, 6, 4, requires_grad=True)
    codes, quantised, _, _ = book(x, update=False)
    assert torch.allclose(quantised, book.codebook[codes])
    weight = torch.randn_like(x)
    (quantised * weight).sum().backward()
    assert torch.allclose(x.grad, weight)
    assert torch.equal(codes, book.encode(x.detach()))


def test_ema_update_moves_codes_toward_assigned_inputs() -> None:
    book = EMACodebook(l_bins=2, emb_width=2, mu=0.5, threshold=1.0)
    book.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    book.code_sum.copy_(book.codebook)
    book.code_count.fill_(1.0)
    book.initialised.fill_(True)
    x = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [9.0, 9.0]]])
    codes, quantised, commit, metrics = book(x, update=True)
    assert codes.tolist() == [[0, 0, 1]]
    assert torch.allclose(quantised, torch.tensor([[[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]]]))
    assert commit.item() == pytest.approx(1.0)  # six squared errors of 1 over 6 elements
    # sums 0.5*[0,0] + 0.5*[2,2] = [1,1], counts 0.5*1 + 0.5*2 = 1.5 -> 2/3; code 1: [9.5, 9.5] / 1.0
    assert torch.allclose(book.codebook, torch.tensor([[2 / 3, 2 / 3], [9.5, 9.5]]))
    assert metrics["usage"].item() == 2


def test_dead_code_restarted_from_encoder_outputs() -> None:
    torch.manual_seed(0)
    book = EMACodebook(l_bins=3, emb_width=2, mu=0.99, threshold=1.0)
    book.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [1000.0, 1000.0]]))
    book.code_sum.copy_(book.codebook)
    book.code_count.fill_(1.0)
    book.initialised.fill_(True)
    x = torch.tensor([[[0.5, 0.0], [0.0, 0.5], [9.0, 9.0], [11.0, 10.0]]])
    _, _, _, metrics = book(x, update=True)
    assert metrics["usage"].item() == 2  # code 2's count decayed to 0.99 < threshold
    restarted = book.codebook[2]
    assert torch.isclose(restarted[None], x[0]).all(-1).any()


# ---------------------------------------------------------------------------------------------- losses


def test_motion_l1_losses_on_hand_made_sequence() -> None:
    target = torch.tensor([0.0, 1.0, 4.0, 9.0]).reshape(1, 4, 1)
    terms = motion_l1_losses(torch.zeros_like(target), target)
    assert terms["recon"].item() == pytest.approx(3.5)  # mean |0, 1, 4, 9|
    assert terms["velocity"].item() == pytest.approx(3.0)  # mean |1, 3, 5|
    assert terms["acceleration"].item() == pytest.approx(2.0)  # mean |2, 2|
    root = root_velocity_losses(
        torch.zeros(1, 3, 3), torch.tensor([0.0, 1.0, 3.0])[None, :, None].expand(1, 3, 3)
    )
    assert root["root_velocity"].item() == pytest.approx(4 / 3)
    assert root["root_acceleration"].item() == pytest.approx(1.5)


def test_half_vqvae_total_loss_combines_terms() -> None:
    torch.manual_seed(0)
    half = VQVAE(27, TINY)
    _, terms = half(_motion()[..., :27])
    expected = terms["recon"] + 0.02 * terms["commit"] + terms["velocity"] + terms["acceleration"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["loss"].requires_grad and not terms["recon"].requires_grad


def test_gradient_reaches_encoder() -> None:
    torch.manual_seed(0)
    model = SepVQVAE(TINY)
    model(_motion())[1]["loss"].backward()
    first_conv = model.vqvae_up.encoder.model[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_adam_steps_lower_reconstruction_loss() -> None:
    # With PyTorch's default init the latents start nearly collapsed; the tiny model leaves that plateau
    # after ~75 steps at this learning rate (recon ~0.5x the initial value by step 150 for seeds 0-3).
    torch.manual_seed(0)
    half = VQVAE(27, TINY)
    optimiser = torch.optim.Adam(half.parameters(), lr=3e-3)
    x = _motion()[..., :27]
    recon_losses = []
    for _ in range(150):
        optimiser.zero_grad()
        _, terms = half(x)
        terms["loss"].backward()
        optimiser.step()
        recon_losses.append(terms["recon"].item())
    assert min(recon_losses[-10:]) < 0.7 * recon_losses[0]
    half.eval()
    round_trip = (half.decode(half.encode(x)) - x).abs().mean().item()
    assert round_trip < 0.75 * recon_losses[0]


# ---------------------------------------------------------------------------------------------- stage 2


def test_stage2_trains_only_the_root_decoder() -> None:
    stage1 = _trained_stage1()
    model = SepVQVAER(TINY)
    model.load_stage1_state_dict(stage1.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = with_root_velocity(
        _motion() + torch.tensor([0.01, 0.0, 0.02]).repeat(24) * torch.arange(240.0)[:, None]
    )
    _, terms = model.train()(x)
    terms["loss"].backward()
    optimiser.step()
    after = model.state_dict()
    for name, param in model.named_parameters():
        if name.startswith("root_decoder."):
            assert param.grad is not None
        else:
            assert param.grad is None and not param.requires_grad, name
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("root_decoder.") for k in changed)  # codebook buffers too
    expected = terms["root_velocity"] + terms["root_acceleration"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    model.eval()
    up, down = model.encode(x)
    decoded = model.decode(up, down)
    assert torch.equal(decoded[..., 3:], stage1.decode(up, down)[..., 3:])
    root = model.root_decoder(model.vqvae_down.bottleneck.decode(down).transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(decoded[..., :3], root)


def test_loss_fn_for_the_training_loop() -> None:
    torch.manual_seed(0)
    model = SepVQVAE(TINY)
    loss, terms = vqvae_loss_fn(model, (_motion(),))
    assert loss.requires_grad and "loss" not in terms and "up/recon" in terms
    _, terms_again = vqvae_loss_fn(model, _motion())
    assert list(terms_again) == list(terms)  # the loop requires the same keys at every step


def test_stage2_rejects_foreign_state_dict() -> None:
    with pytest.raises(ValueError, match="not a SepVQVAE state dict"):
        SepVQVAER(TINY).load_stage1_state_dict({"bogus": torch.zeros(1)})


def test_state_dict_round_trip(tmp_path) -> None:
    model = _trained_stage1()
    path = tmp_path / "vqvae.pt"
    torch.save({"model": model.state_dict()}, path)
    loaded = SepVQVAE(TINY)
    loaded.load_state_dict(torch.load(path, weights_only=True)["model"])
    loaded.eval()
    x = _motion(seed=3)
    codes = model.encode(x)
    assert all(torch.equal(a, b) for a, b in zip(codes, loaded.encode(x), strict=True))
    assert torch.equal(model.decode(*codes), loaded.decode(*codes))
    assert bool(loaded.vqvae_up.bottleneck.initialised)
