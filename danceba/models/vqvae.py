"""Bailando's motion VQ-VAE: per body half, a dilated Conv1d encoder, a Jukebox-style EMA codebook and a
mirrored decoder; ``SepVQVAE`` pairs an upper-body and a lower-body half, ``SepVQVAER`` adds the stage-2
root-velocity decoder.

Motion comes in Bailando's 72-channel layout (:mod:`danceba.motion.bailando_layout`): channels ``[:3]``
carry the root (zeroed for stage 1, root velocity for stage 2), the other joints are root-relative. A
window of T frames (T divisible by 8) becomes T/8 codes per half.

Losses follow the reference: stage 1 is ``L1(recon) + commit * commit_loss + vel * L1(dx) + acc * L1(d2x)``
per half, averaged over the two halves; stage 2 is ``L1(root_vel) + root_acc * L1(d root_vel)`` and trains
only the root-velocity decoder. ``root_decoder: body`` replaces that decoder by
:class:`danceba.models.root_from_body.BodyRootDecoder` (the decoded body in, squared errors).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from danceba.models.root_from_body import BodyRootDecoder, root_velocity_squared_losses
from danceba.models.vqvae_config import VQVAEConfig
from danceba.motion.bailando_layout import (
    JOINT_CHANNELS,
    N_JOINTS,
    ROOT_CHANNELS,
    SMPL_DOWN,
    SMPL_UP,
    merge_body,
    split_body,
    zero_root,
)

# ----------------------------------------------------------------------------------------------
# Encoder / decoder
# ----------------------------------------------------------------------------------------------


class ResConv1DBlock(nn.Module):
    """``x + Conv1x1(ReLU(Conv3(ReLU(x), dilation d)))`` on (B, C, T)."""

    def __init__(self, n_in: int, n_state: int, dilation: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(n_in, n_state, 3, 1, padding=dilation, dilation=dilation),
            nn.ReLU(),
            nn.Conv1d(n_state, n_in, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


def resnet1d(width: int, config: VQVAEConfig, reverse: bool) -> nn.Sequential:
    """``config.depth`` ResConv1DBlocks with dilations growth**0, growth**1, ... (reversed if asked)."""
    hidden = int(config.m_conv * width)
    blocks = [ResConv1DBlock(width, hidden, config.dilation_growth_rate**i) for i in range(config.depth)]
    return nn.Sequential(*(blocks[::-1] if reverse else blocks))


class Encoder(nn.Module):
    """(B, x_channels, T) -> (B, emb_width, T / hop): ``down_t`` x [strided Conv1d, Resnet1D], Conv1d."""

    def __init__(self, x_channels: int, config: VQVAEConfig) -> None:
        super().__init__()
        w, s = config.width, config.stride_t
        layers: list[nn.Module] = []
        for i in range(config.down_t):
            layers.append(nn.Conv1d(x_channels if i == 0 else w, w, 2 * s, s, s // 2))
            layers.append(resnet1d(w, config, reverse=False))
        layers.append(nn.Conv1d(w, config.emb_width, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, emb_width, T / hop) -> (B, x_channels, T): Conv1d, ``down_t`` x [Resnet1D, ConvTranspose1d],
    Conv1d."""

    def __init__(self, x_channels: int, config: VQVAEConfig) -> None:
        super().__init__()
        w, s, e = config.width, config.stride_t, config.emb_width
        layers: list[nn.Module] = [nn.Conv1d(e, w, 3, 1, 1)]
        for i in range(config.down_t):
            layers.append(resnet1d(w, config, reverse=config.reverse_decoder_dilation))
            layers.append(nn.ConvTranspose1d(w, e if i == config.down_t - 1 else w, 2 * s, s, s // 2))
        layers.append(nn.Conv1d(e, x_channels, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


# ----------------------------------------------------------------------------------------------
# Codebook
# ----------------------------------------------------------------------------------------------


def _synced(tensor: torch.Tensor, op: str) -> torch.Tensor:
    """Under torch.distributed: all-reduce (sum) or broadcast from rank 0, so all ranks share one codebook."""
    if dist.is_available() and dist.is_initialized():
        if op == "sum":
            dist.all_reduce(tensor)
        else:
            dist.broadcast(tensor, 0)
    return tensor


class EMACodebook(nn.Module):
    """Jukebox-style EMA k-means codebook with dead-code restart and a straight-through estimator.

    Buffers (all in ``state_dict``): ``codebook (K, D)``, ``code_sum (K, D)``, ``code_count (K,)``,
    ``initialised ()``. The codebook is set from the first training batch; each training forward then moves
    every code to the EMA mean of the encoder outputs assigned to it, and codes whose EMA count falls below
    ``threshold`` are replaced by random encoder outputs of the batch.
    """

    def __init__(self, l_bins: int, emb_width: int, mu: float = 0.99, threshold: float = 1.0) -> None:
        super().__init__()
        self.l_bins, self.emb_width, self.mu, self.threshold = l_bins, emb_width, mu, threshold
        self.register_buffer("codebook", torch.zeros(l_bins, emb_width))
        self.register_buffer("code_sum", torch.zeros(l_bins, emb_width))
        self.register_buffer("code_count", torch.zeros(l_bins))
        self.register_buffer("initialised", torch.tensor(False))

    def _random_rows(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (K, D) random rows of x; tiled with noise of std 0.01/sqrt(D) when N < K."""
        n, d = x.shape
        if n < self.l_bins:
            x = x.repeat((self.l_bins + n - 1) // n, 1)
            x = x + torch.randn_like(x) * (0.01 / math.sqrt(d))
        return _synced(
            x[torch.randperm(x.shape[0], device=x.device)[: self.l_bins]].contiguous(), "broadcast"
        )

    @torch.no_grad()
    def _init_from(self, x: torch.Tensor) -> None:
        self.codebook.copy_(self._random_rows(x))
        self.code_sum.copy_(self.codebook)
        self.code_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _update(self, x: torch.Tensor, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """One EMA step on flattened encoder outputs x (N, D) with their codes (N,)."""
        onehot = F.one_hot(codes, self.l_bins).to(x.dtype)  # (N, K)
        batch_sum = _synced(onehot.t() @ x, "sum")  # (K, D)
        batch_count = _synced(onehot.sum(0), "sum")  # (K,)
        restart = self._random_rows(x)
        old = self.codebook.clone()
        self.code_sum.mul_(self.mu).add_(batch_sum, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(batch_count, alpha=1 - self.mu)
        alive = (self.code_count >= self.threshold).unsqueeze(1)
        self.codebook.copy_(
            torch.where(alive, self.code_sum / self.code_count.clamp_min(1e-12)[:, None], restart)
        )
        return {
            "usage": alive.sum().to(x.dtype),
            "dk": torch.linalg.norm(self.codebook - old) / math.sqrt(old.numel()),
        }

    def _check_ready(self) -> None:
        if not bool(self.initialised):
            raise RuntimeError(
                "EMACodebook is not initialised: run a training forward pass or load a trained state dict"
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest code index: (..., D) -> (...,) long."""
        self._check_ready()
        flat = x.reshape(-1, self.emb_width)
        return torch.cdist(flat, self.codebook.to(flat.dtype)).argmin(-1).reshape(x.shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors: (...,) long -> (..., D)."""
        self._check_ready()
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.l_bins):
            raise ValueError(
                f"codes must lie in [0, {self.l_bins}), got [{int(codes.min())}, {int(codes.max())}]"
            )
        return F.embedding(codes, self.codebook)

    def forward(
        self, x: torch.Tensor, update: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Quantise encoder outputs x (B, T', D).

        Returns ``codes (B, T')``, ``quantised (B, T', D)`` (straight-through: forward value = code vector,
        gradient = identity to x), ``commit_loss`` (scalar, ||q.detach() - x||^2 / numel) and metrics
        (``fit``, ``entropy``, ``perplexity``, ``used_curr``; plus ``usage``, ``dk`` after an EMA update).
        The codebook is updated when ``update`` (default: ``self.training``).
        """
        update = self.training if update is None else update
        flat = x.detach().reshape(-1, self.emb_width).float()
        if update and not bool(self.initialised):
            self._init_from(flat)
        self._check_ready()
        distance = torch.cdist(flat, self.codebook)
        min_distance, codes = distance.min(-1)
        quantised = F.embedding(codes, self.codebook).reshape(x.shape).to(x.dtype)
        counts = torch.bincount(codes, minlength=self.l_bins).to(flat.dtype)
        prob = counts / counts.sum()
        entropy = -(prob * torch.log(prob + 1e-8)).sum()
        metrics = {
            "fit": (min_distance**2).mean(),
            "entropy": entropy,
            "perplexity": entropy.exp(),
            "used_curr": (counts >= self.threshold).sum().to(flat.dtype),
        }
        if update:
            metrics.update(self._update(flat, codes))
        commit_loss = ((quantised.detach() - x) ** 2).sum() / x.numel()
        quantised = x + (quantised - x).detach()
        return codes.reshape(x.shape[:-1]), quantised, commit_loss, metrics


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------


def motion_l1_losses(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 of positions, velocities (first differences) and accelerations (second differences) over time.

    pred, target: (B, T, C). Returns ``recon``, ``velocity``, ``acceleration`` (scalars).
    """
    dp, dt = pred.diff(dim=1), target.diff(dim=1)
    return {
        "recon": F.l1_loss(pred, target),
        "velocity": F.l1_loss(dp, dt),
        "acceleration": F.l1_loss(dp.diff(dim=1), dt.diff(dim=1)),
    }


def root_velocity_losses(pred_vel: torch.Tensor, target_vel: torch.Tensor) -> dict[str, torch.Tensor]:
    """Stage 2: L1 of the root velocity and of its first difference. (B, T, 3) each."""
    return {
        "root_velocity": F.l1_loss(pred_vel, target_vel),
        "root_acceleration": F.l1_loss(pred_vel.diff(dim=1), target_vel.diff(dim=1)),
    }


# ----------------------------------------------------------------------------------------------
# One body half, both halves, stage 2
# ----------------------------------------------------------------------------------------------


class VQVAE(nn.Module):
    """VQ-VAE for one body half: (B, T, x_channels) <-> codes (B, T / hop)."""

    def __init__(self, x_channels: int, config: VQVAEConfig) -> None:
        super().__init__()
        self.x_channels, self.config = x_channels, config
        self.encoder = Encoder(x_channels, config)
        self.bottleneck = EMACodebook(config.l_bins, config.emb_width, config.mu, config.threshold)
        self.decoder = Decoder(x_channels, config)

    def _check_motion(self, x: torch.Tensor, name: str = "x") -> None:
        if x.ndim != 3 or x.shape[-1] != self.x_channels:
            raise ValueError(f"{name}: expected shape (B, T, {self.x_channels}), got {tuple(x.shape)}")
        hop = self.config.hop_length
        if x.shape[1] == 0 or x.shape[1] % hop:
            raise ValueError(f"{name}: number of frames T={x.shape[1]} must be a positive multiple of {hop}")

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> encoder output (B, T / hop, D)."""
        self._check_motion(x)
        return self.encoder(x.float().transpose(1, 2)).transpose(1, 2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Motion (B, T, C) -> codes (B, T / hop)."""
        return self.bottleneck.encode(self.encode_latent(x))

    def decode_quantised(self, quantised: torch.Tensor) -> torch.Tensor:
        """Code vectors (B, T', D) -> motion (B, T' * hop, C)."""
        return self.decoder(quantised.transpose(1, 2)).transpose(1, 2)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, T') -> motion (B, T' * hop, C)."""
        return self.decode_quantised(self.bottleneck.decode(codes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruct x (B, T, C). Returns (recon (B, T, C), terms); ``terms["loss"]`` carries the gradient,
        the other terms (losses and codebook metrics) are detached for logging."""
        _, quantised, commit_loss, metrics = self.bottleneck(self.encode_latent(x))
        if not self.training:
            quantised = quantised.detach()
        recon = self.decode_quantised(quantised)
        terms = motion_l1_losses(recon, x.float())
        c = self.config
        loss = (
            terms["recon"]
            + c.commit * commit_loss
            + c.vel * terms["velocity"]
            + c.acc * terms["acceleration"]
        )
        out = {"loss": loss, "commit": commit_loss, **terms, **metrics}
        return recon, {k: v if k == "loss" else v.detach() for k, v in out.items()}


def _check_x72(x72: torch.Tensor, name: str) -> None:
    if x72.ndim != 3 or x72.shape[-1] != N_JOINTS * JOINT_CHANNELS:
        raise ValueError(f"{name}: expected shape (B, T, 72), got {tuple(x72.shape)}")


class SepVQVAE(nn.Module):
    """Stage 1: separate VQ-VAEs for the upper (45-d) and lower (27-d) body; root channels are zeroed."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.vqvae_up = VQVAE(len(SMPL_UP) * JOINT_CHANNELS, config)
        self.vqvae_down = VQVAE(len(SMPL_DOWN) * JOINT_CHANNELS, config)

    def encode(self, joints72: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bailando-layout motion (B, T, 72) -> (up_codes, down_codes), each (B, T / hop).

        The root channels are zeroed first (the encoders never see the root)."""
        _check_x72(joints72, "joints72")
        up, down = split_body(zero_root(joints72))
        return self.vqvae_up.encode(up), self.vqvae_down.encode(down)

    def decode(self, up_codes: torch.Tensor, down_codes: torch.Tensor) -> torch.Tensor:
        """(B, T') codes for each half -> motion (B, T' * hop, 72)."""
        return merge_body(self.vqvae_up.decode(up_codes), self.vqvae_down.decode(down_codes))

    def forward(self, joints72: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Stage-1 step on (B, T, 72) (root zeroed here, as ``global_vel: false``).

        Returns (recon (B, T, 72), terms): ``loss = (loss_up + loss_down) / 2`` as the reference, plus
        every per-half term prefixed ``up/`` and ``down/`` (detached)."""
        _check_x72(joints72, "joints72")
        up, down = split_body(zero_root(joints72))
        recon_up, terms_up = self.vqvae_up(up)
        recon_down, terms_down = self.vqvae_down(down)
        terms = {"loss": 0.5 * (terms_up["loss"] + terms_down["loss"])}
        terms.update({f"up/{k}": v.detach() for k, v in terms_up.items()})
        terms.update({f"down/{k}": v.detach() for k, v in terms_down.items()})
        return merge_body(recon_up, recon_down), terms


class SepVQVAER(SepVQVAE):
    """Stage 2: a frozen stage-1 SepVQVAE plus ``root_decoder`` predicting the root velocity: a Decoder with
    3 output channels reading the lower half's code vectors (``root_decoder: codes``, the reference), or a
    :class:`BodyRootDecoder` reading the decoded body (``body``). Only ``root_decoder`` is trainable."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__(config)
        self.root_decoder: nn.Module = (
            BodyRootDecoder(config.root_width)
            if config.root_decoder == "body"
            else Decoder(JOINT_CHANNELS, config)
        )
        for name, param in self.named_parameters():
            param.requires_grad_(name.startswith("root_decoder."))

    def load_stage1_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a :class:`SepVQVAE` state dict; the root decoder keeps its own weights."""
        result = self.load_state_dict(state_dict, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("root_decoder.")]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"state_dict is not a SepVQVAE state dict: missing {missing[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}"
            )

    def _root_velocity(self, down_quantised: torch.Tensor, body72: torch.Tensor) -> torch.Tensor:
        """Lower-half code vectors (B, T', D) and the decoded body (B, T' * hop, 72) -> (B, T' * hop, 3)."""
        if isinstance(self.root_decoder, BodyRootDecoder):
            return self.root_decoder(body72[..., JOINT_CHANNELS:])
        return self.root_decoder(down_quantised.transpose(1, 2)).transpose(1, 2)

    @torch.no_grad()
    def decoded_body(self, joints72: torch.Tensor) -> torch.Tensor:
        """(B, T, 72) -> the stage-1 decoders' reconstruction (B, T, 72) of its root-relative body, as the
        root decoder sees it in training."""
        return SepVQVAE.decode(self, *self.encode(joints72))

    def decode(self, up_codes: torch.Tensor, down_codes: torch.Tensor) -> torch.Tensor:
        """(B, T') codes for each half -> (B, T' * hop, 72) with channels [:3] = predicted root velocity."""
        x72 = super().decode(up_codes, down_codes)
        root = self._root_velocity(self.vqvae_down.bottleneck.decode(down_codes), x72)
        return torch.cat([root, x72[..., JOINT_CHANNELS:]], dim=-1)

    def forward(self, joints72: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Stage-2 step on (B, T, 72) whose channels [:3] hold the root velocity (``global_vel: true``).

        Encoders, codebooks and the stage-1 decoders run without gradient and without EMA updates.
        Returns (recon (B, T, 72) with channels [:3] = predicted root velocity, terms) where
        ``loss = L1(root_vel) + root_acc * L1(d root_vel)`` (``root_decoder: body``: squared errors in m/s)."""
        _check_x72(joints72, "joints72")
        with torch.no_grad():
            up, down = split_body(zero_root(joints72))
            _, q_down, _, _ = self.vqvae_down.bottleneck(self.vqvae_down.encode_latent(down), update=False)
            _, q_up, _, _ = self.vqvae_up.bottleneck(self.vqvae_up.encode_latent(up), update=False)
            body = merge_body(self.vqvae_up.decode_quantised(q_up), self.vqvae_down.decode_quantised(q_down))
        root = self._root_velocity(q_down.detach(), body)
        losses = root_velocity_squared_losses if self.config.root_decoder == "body" else root_velocity_losses
        terms = losses(root, joints72[..., ROOT_CHANNELS].float())
        loss = terms["root_velocity"] + self.config.root_acc * terms["root_acceleration"]
        recon = torch.cat([root, body[..., JOINT_CHANNELS:]], dim=-1)
        return recon, {"loss": loss, **{k: v.detach() for k, v in terms.items()}}


def vqvae_loss_fn(model: nn.Module, batch: torch.Tensor | tuple | list) -> tuple[torch.Tensor, dict]:
    """``loss_fn`` for ``danceba.train.loop.train``: batch (B, T, 72) or a 1-tuple of it -> (loss, terms).

    Works for both stages (and a DDP wrapper): it calls ``model(x)`` and splits off ``terms["loss"]``."""
    x = batch[0] if isinstance(batch, tuple | list) else batch
    _, terms = model(x)
    return terms["loss"], {k: v for k, v in terms.items() if k != "loss"}


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as the codebook are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
