"""Motion tokens: the frozen VQ-VAE encodes every training window once (stage ``tokenize``).

Bailando re-runs the VQ-VAE encoder on every GPT training step; its weights are frozen by then, so
this computes each window's upper/lower codes once. ``tokens.parquet`` (one row group per sequence):

    sequence: string; split: string; music_id: string;
    start_frame: int32 (first 60 fps motion frame of the window);
    music_start: int32 (= start_frame // 8, the matching 7.5 fps music frame);
    up, down: fixed_size_list<int16>[window // 8] (codes of the upper / lower body).

The music is not copied per window: a reader slices ``music_features_7p5fps.parquet`` at
``music_start`` (see :class:`danceba.data.windows.TokenWindows`). Windows whose music would run past
the end of the track are dropped (AIST++ trains on the common length of music and dance).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from danceba import tables
from danceba.data.windows import FRAMES_PER_TOKEN, read_sequence_index
from danceba.models.bailando_layout import sliding_windows, to_bailando_layout
from danceba.models.vqvae import SepVQVAE
from danceba.strict_dataclass import PositiveInt, SplitName


@dataclass(frozen=True)
class TokenizeConfig:
    """``tokenize`` in params.yaml: window length and stride in 60 fps frames (Bailando's GPT: 240 / 8)."""

    window: PositiveInt = 240
    stride: PositiveInt = 8
    splits: tuple[SplitName, ...] = ("train", "val", "test")
    batch_size: PositiveInt = 256


@torch.inference_mode()
def encode_windows(vqvae: SepVQVAE, windows: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, T, 72) Bailando-layout windows -> up, down codes (N, T / 8) int16."""
    device = next(vqvae.parameters()).device
    ups, downs = [], []
    for start in range(0, len(windows), batch_size):
        chunk = torch.from_numpy(windows[start : start + batch_size]).to(device)
        up, down = vqvae.encode(chunk)
        ups.append(up.cpu().numpy().astype(np.int16))
        downs.append(down.cpu().numpy().astype(np.int16))
    return np.concatenate(ups), np.concatenate(downs)


def sequence_token_rows(
    vqvae: SepVQVAE,
    name: str,
    split: str,
    music_id: str,
    joints: np.ndarray,
    music_frames: int,
    config: TokenizeConfig,
) -> pa.Table | None:
    """One sequence's windows as token rows, or None when no window fits its music."""
    windows = sliding_windows(to_bailando_layout(joints), config.window, config.stride)
    starts = np.arange(len(windows), dtype=np.int32) * config.stride
    tokens = config.window // FRAMES_PER_TOKEN
    fits = starts // FRAMES_PER_TOKEN + tokens <= music_frames
    windows, starts = windows[fits], starts[fits]
    if len(windows) == 0:
        return None
    up, down = encode_windows(vqvae, np.ascontiguousarray(windows, dtype=np.float32), config.batch_size)
    n = len(starts)
    return pa.table(
        {
            "sequence": pa.array([name] * n, pa.string()),
            "split": pa.array([split] * n, pa.string()),
            "music_id": pa.array([music_id] * n, pa.string()),
            "start_frame": pa.array(starts),
            "music_start": pa.array((starts // FRAMES_PER_TOKEN).astype(np.int32)),
            "up": pa.FixedSizeListArray.from_arrays(pa.array(up.reshape(-1)), tokens),
            "down": pa.FixedSizeListArray.from_arrays(pa.array(down.reshape(-1)), tokens),
        }
    )


def write_tokens(
    vqvae: SepVQVAE, joints: Path, sequences: Path, music_7p5fps: Path, out: Path, config: TokenizeConfig
) -> dict[str, int]:
    """Tokenize every window of the selected splits into ``out``; return window counts per split."""
    if config.window % FRAMES_PER_TOKEN:
        raise ValueError(f"tokenize.window: {config.window} is not a multiple of {FRAMES_PER_TOKEN}")
    index = read_sequence_index(sequences)
    index = index[index["split"].isin(config.splits)]
    music_lengths = {
        key: pq.ParquetFile(music_7p5fps).metadata.row_group(i).num_rows
        for i, key in enumerate(tables.group_keys(music_7p5fps))
    }
    counts: dict[str, int] = {}
    vqvae.eval()

    def groups() -> Iterator[pa.Table]:
        for row in tqdm(index.itertuples(), total=len(index), desc="tokenize", unit="seq"):
            if row.music_id not in music_lengths:
                raise KeyError(
                    f"{music_7p5fps}: no music features for {row.music_id} (sequence {row.sequence})"
                )
            joints_xyz = tables.read_group(joints, row.sequence, "joints").reshape(-1, 24, 3)
            rows = sequence_token_rows(
                vqvae, row.sequence, row.split, row.music_id, joints_xyz, music_lengths[row.music_id], config
            )
            if rows is not None:
                counts[row.split] = counts.get(row.split, 0) + rows.num_rows
                yield rows

    metadata = {"window": config.window, "stride": config.stride, "codes_per_window": config.window // 8}
    tables.write_grouped_table(out, groups(), metadata)
    return dict(sorted(counts.items()))


def read_tokens(path: Path, splits: tuple[str, ...]) -> pa.Table:
    """The token rows of the given splits."""
    table = pq.read_table(path)
    mask = pa.compute.is_in(table.column("split"), value_set=pa.array(list(splits)))
    selected = table.filter(mask)
    if selected.num_rows == 0:
        raise ValueError(f"{path}: no token windows in splits {list(splits)}")
    return selected


def token_arrays(table: pa.Table, column: str) -> np.ndarray:
    """A fixed-size-list code column as an (N, tokens) int64 array."""
    return tables.fixed_list_to_numpy(table, column, np.int64)
