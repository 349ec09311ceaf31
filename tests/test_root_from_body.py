"""The body-reading root decoder (``train_vqvae.model.root_decoder: body``): losses with known values, its
statistics, stage 2 on it, and that it learns a horizontal travel the body implies (tiny sizes, CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from danceba.data.windows import MotionWindows
from danceba.models.root_from_body import (
    BODY_CHANNELS,
    STD_FLOOR,
    VELOCITY_SCALE,
    BodyRootDecoder,
    root_velocity_squared_losses,
)
from danceba.models.vqvae import SepVQVAE, SepVQVAER
from danceba.motion.bailando_layout import to_bailando_layout, with_root_velocity
from danceba.trainers.vqvae import fit_body_normalisation
from tests.tiny_models import TINY_VQVAE

BODY = dataclasses.replace(TINY_VQVAE, root_decoder="body", root_width=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stepping_joints(frames: int = 480, seed: int = 0) -> np.ndarray:
    """(T, 24, 3) joints whose root travels sideways exactly when the left leg swings out: root x =
    0.15 m x the leg's swing (0 .. 1), so the travel is a function of the body, as in the embedded dances."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 60.0
    swing = 0.5 - 0.5 * np.cos(2 * np.pi * t / rng.uniform(0.9, 1.1))
    rest = np.random.default_rng(123).normal(0.0, 0.3, (24, 3))  # one dancer
    joints = np.repeat(rest[None], frames, axis=0)
    joints[:, 0] = [0.0, 0.9, 0.0]
    joints[:, 7, 0] += 0.2 * swing  # left ankle out
    joints[:, 4, 0] += 0.1 * swing  # left knee out
    joints[:, 1:] += joints[:, :1]  # root-relative -> world
    joints[:, :, 0] += 0.15 * swing[:, None]
    return joints.astype(np.float32)


def test_squared_losses_are_in_metres_per_second() -> None:
    target = torch.full((1, 10, 3), 0.01)  # 0.6 m/s
    terms = root_velocity_squared_losses(torch.zeros_like(target), target)
    assert terms["root_velocity"].item() == pytest.approx((0.01 * VELOCITY_SCALE) ** 2)
    assert terms["root_acceleration"].item() == pytest.approx(0.0)
    ramp = torch.arange(10.0)[None, :, None].expand(1, 10, 3) * 0.001
    assert root_velocity_squared_losses(ramp, torch.zeros_like(ramp))["root_acceleration"].item() == (
        pytest.approx((0.001 * VELOCITY_SCALE) ** 2)
    )


def test_normalisation_statistics_and_shape_errors() -> None:
    decoder = BodyRootDecoder(width=8)
    body = torch.randn(4, 16, BODY_CHANNELS) * 3 + 2
    decoder.fit_normalisation(body)
    flat = body.reshape(-1, BODY_CHANNELS)
    assert torch.allclose(decoder.body_mean, flat.mean(0), atol=1e-5)
    assert torch.allclose(decoder.body_std, flat.std(0), atol=1e-5)
    assert decoder(body).shape == (4, 16, 3)
    with pytest.raises(ValueError, match="expected"):
        decoder(torch.zeros(1, 16, 72))
    with pytest.raises(ValueError, match="expected"):
        decoder.fit_normalisation(torch.zeros(16, BODY_CHANNELS))
    decoder.fit_normalisation(torch.zeros(2, 4, BODY_CHANNELS))  # a still channel: no division by 0
    assert torch.isfinite(decoder(torch.zeros(1, 4, BODY_CHANNELS))).all()


def test_stage2_body_decoder_reads_the_decoded_body_and_trains_alone() -> None:
    torch.manual_seed(0)
    stage1 = SepVQVAE(BODY)
    x = with_root_velocity(torch.from_numpy(to_bailando_layout(_stepping_joints()))[None, :240])
    stage1(x)  # initialises the codebooks
    model = SepVQVAER(BODY)
    assert isinstance(model.root_decoder, BodyRootDecoder)
    model.load_stage1_state_dict(stage1.state_dict())
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("root_decoder.")}
    _, terms = model.train()(x)
    terms["loss"].backward()
    assert all((p.grad is not None) == n.startswith("root_decoder.") for n, p in model.named_parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items())
    model.eval()
    up, down = model.encode(x)
    decoded = model.decode(up, down)
    body = model.decoded_body(x)
    assert torch.equal(decoded[..., 3:], body[..., 3:])
    assert torch.allclose(decoded[..., :3], model.root_decoder(body[..., 3:]))


def test_body_decoder_learns_a_travel_that_the_body_implies() -> None:
    """Trained on four dances whose sideways travel follows a leg's swing, the decoder predicts a fifth's
    root velocity from its root-relative body alone."""
    torch.manual_seed(0)
    windows = MotionWindows({f"s{k}": _stepping_joints(seed=k) for k in range(4)}, 96, 16, root_velocity=True)
    batch = torch.stack([windows[i] for i in range(len(windows))])
    decoder = BodyRootDecoder(width=32)
    decoder.fit_normalisation(batch[..., 3:])
    optimiser = torch.optim.Adam(decoder.parameters(), lr=1e-3)
    for _ in range(150):
        optimiser.zero_grad()
        terms = root_velocity_squared_losses(decoder(batch[..., 3:]), batch[..., :3])
        (terms["root_velocity"] + terms["root_acceleration"]).backward()
        optimiser.step()
    held_out = with_root_velocity(torch.from_numpy(to_bailando_layout(_stepping_joints(seed=9)))[None])
    with torch.no_grad():
        predicted = decoder(held_out[..., 3:])[0, :, 0]
    truth = held_out[0, :, 0]
    assert float(np.corrcoef(predicted.numpy(), truth.numpy())[0, 1]) > 0.99
    assert 0.9 < float(predicted.std() / truth.std()) < 1.1
    assert float(predicted.sum() - truth.sum()) == pytest.approx(0.0, abs=0.05)  # metres of travel


def test_fit_body_normalisation_reads_the_decoded_training_windows() -> None:
    """The stage sets the statistics from the stage-1 reconstruction of evenly spaced training windows
    (here every window: fewer than the limit), in chunks, equal to fitting them at once."""
    torch.manual_seed(0)
    windows = MotionWindows({f"s{k}": _stepping_joints(seed=k) for k in range(2)}, 96, 16, root_velocity=True)
    model = SepVQVAER(BODY)
    stage1 = SepVQVAE(BODY)
    stage1(torch.stack([windows[i] for i in range(len(windows))]))  # initialises the codebooks
    model.load_stage1_state_dict(stage1.state_dict())
    fit_body_normalisation(model, windows)
    body = model.decoded_body(torch.stack([windows[i] for i in range(len(windows))]))[..., 3:]
    flat = body.reshape(-1, BODY_CHANNELS)
    assert torch.allclose(model.root_decoder.body_mean, flat.mean(0), atol=1e-5)
    assert torch.allclose(model.root_decoder.body_std, flat.std(0).clamp_min(STD_FLOOR), atol=1e-5)
    fit_body_normalisation(model, windows, limit=2)  # the first and the last window only
    ends = model.decoded_body(torch.stack([windows[0], windows[len(windows) - 1]]))[..., 3:]
    assert torch.allclose(model.root_decoder.body_mean, ends.reshape(-1, BODY_CHANNELS).mean(0), atol=1e-5)
