"""Danceba's Phase-based Rhythm Extraction (PRE): an additive embedding from the STFT phase of the music.

``angle(STFT(music))`` -> three independent ``Linear -> BatchNorm1d -> ReLU`` embeddings, one per stream
(music, up, down), concatenated along time into a ``(B, 3t, D)`` term that the GPT scales by a learned
scalar and adds to its token embeddings. It is computed from the music alone and replaces Bailando's
learned positional embedding.

Phase modes (see ``danceba.features.phase``):

* ``official``: the released code's STFT over the *flattened* ``(t, C)`` window (n_fft 512, hop 256,
  257 bins), centre-cropped. Every phase frame mixes samples from many music frames, and the crop is
  centred in the window, so a token's PRE term depends on *later* music too: PRE is not causal. That
  is the official design (the whole music is known before generation), not a bug of this module. At
  the paper size (29 x 438 = 12702 samples, 50 frames, rows 10..38 kept), row ``k`` is centred on sample
  ``256 (10 + k)`` and spans +-256 samples (+-0.6 music frames): row 0 reads music frames 5-6, row 28
  frames 21-22, so the PRE row of time ``k`` is not the phase "of" music frame ``k``.
* ``per_channel``: an STFT over time per channel (hop 1, ``n_fft`` frames centred on each music frame,
  so also looking ``n_fft // 2`` frames ahead), one phase vector of ``C * (n_fft // 2 + 1)`` per frame.

Alignment of the three streams (official mode):

* ``faithful=True`` reproduces the release: crop to ``block_size`` frames, concatenate the three
  streams, then crop the ``3F`` rows to ``3t``. For ``t == block_size`` (training) each stream gets its
  own ``t`` rows. For ``t < block_size`` (the sampler's windows) there are ``F > t`` frames per stream,
  so the up and down tokens receive rows that belong to the previous stream's embedding: a train/test
  mismatch (a defect, damped only by the small ``position_scale``).
* ``faithful=False`` (default) centre-crops each stream to exactly ``t`` frames before concatenating,
  so stream ``k`` always gets its own embedding. Identical to the release at ``t == block_size``.

Module names (``pos_emb_1..3``, ``linear2``, ``bn2``) follow the release so its weights load key for key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from danceba.features.phase import PhaseMode, official_stft_phase, per_channel_stft_phase


class LinearPhaseEmbedding(nn.Module):
    """phase (B, F, n_bins) -> (B, F, D): Linear -> BatchNorm1d (over D, statistics over B x F) -> ReLU.

    A plain ``nn.Linear`` with known ``in_features`` (the release uses ``LazyLinear``, which is the same
    layer once materialised).
    """

    def __init__(self, n_bins: int, n_embd: int) -> None:
        super().__init__()
        self.linear2 = nn.Linear(n_bins, n_embd)
        self.bn2 = nn.BatchNorm1d(n_embd)

    def forward(self, phase: torch.Tensor) -> torch.Tensor:
        x = self.linear2(phase)
        x = self.bn2(x.transpose(1, 2)).transpose(1, 2)
        return F.relu(x)


class PhaseRhythmEmbedding(nn.Module):
    """PRE (the release's ``LPE_1``): music (B, t, C) -> (B, 3t, D) for ``[music | up | down]``."""

    def __init__(
        self,
        n_music: int,
        n_embd: int,
        block_size: int,
        mode: PhaseMode = "official",
        n_fft: int = 512,
        hop_length: int = 256,
        channel_n_fft: int = 8,
        faithful: bool = False,
    ) -> None:
        super().__init__()
        if mode == "official":
            n_bins = n_fft // 2 + 1
        elif mode == "per_channel":
            n_bins = n_music * (channel_n_fft // 2 + 1)
        else:
            raise ValueError(f"pre_mode: expected 'official' or 'per_channel', got {mode!r}")
        self.mode = mode
        self.block_size = block_size
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.channel_n_fft = channel_n_fft
        self.faithful = faithful
        self.pos_emb_1 = LinearPhaseEmbedding(n_bins, n_embd)
        self.pos_emb_2 = LinearPhaseEmbedding(n_bins, n_embd)
        self.pos_emb_3 = LinearPhaseEmbedding(n_bins, n_embd)

    def phase(self, music: torch.Tensor) -> torch.Tensor:
        """music (B, t, C) -> phase (B, F, n_bins); F == t except in faithful official mode (F >= t)."""
        t = music.shape[1]
        if self.mode == "per_channel":
            return self._per_channel_phase(music)
        seq_len = self.block_size if self.faithful else t
        phase = official_stft_phase(music, n_fft=self.n_fft, hop_length=self.hop_length, seq_len=seq_len)
        if phase.shape[1] < t:
            raise ValueError(
                f"PRE: the official STFT of a ({t}, {music.shape[2]}) music window has only {phase.shape[1]} "
                f"frames for {t} tokens; it needs n_music >= hop_length ({self.hop_length})"
            )
        return phase

    def _per_channel_phase(self, music: torch.Tensor) -> torch.Tensor:
        """Per-channel phase, one frame per music frame; windows shorter than the STFT's reflect padding
        needs (t <= n_fft // 2, early generation steps) are padded at the end by repeating the last frame."""
        t = music.shape[1]
        need = self.channel_n_fft // 2 + 1
        if t < need:
            music = torch.cat([music, music[:, -1:].expand(-1, need - t, -1)], dim=1)
        return per_channel_stft_phase(music, n_fft=self.channel_n_fft, hop_length=1)[:, :t]

    def forward(self, music: torch.Tensor, rows: list[int] | None = None) -> torch.Tensor:
        """music (B, t, C) -> (B, 3t, D), or only the output rows ``rows`` (B, len(rows), D): a cached
        decoder needs three of the 3t rows per step, and embedding all of them cost a third of a
        40-song paper-size step (eval mode: the batch norm then treats rows independently)."""
        t = music.shape[1]
        phase = self.phase(music)
        embeds = (self.pos_emb_1, self.pos_emb_2, self.pos_emb_3)
        if rows is not None:
            # Stream and frame of each output row; the faithful crop keeps the first 3t of 3F rows.
            frames = phase.shape[1]
            return torch.cat(
                [embeds[r // frames](phase[:, r % frames : r % frames + 1]) for r in rows], dim=1
            )
        streams = [embed(phase) for embed in embeds]
        if phase.shape[1] != t:  # faithful official mode, t < block_size: the release's crop of the concat
            return torch.cat(streams, dim=1)[:, : 3 * t]
        return torch.cat(streams, dim=1)
