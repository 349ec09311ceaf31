"""Motion tokens: the frozen VQ-VAE encodes every training window once (stage ``tokenize``).

Bailando re-runs the VQ-VAE encoder on every GPT training step; its weights are frozen by then, so
this computes each window's upper/lower codes once. ``tokens.parquet`` (one row group per sequence):

    sequence: string; split: string; music_id: string;
    start_frame: int32 (first 60 fps motion frame of the window);
    music_start: int32 (= start_frame // 8, the matching 7.5 fps music frame);
    up, down: fixed_size_list<int16>[window // 8] (codes of the upper / lower body).

The music is not copied per window: a reader slices the GPT's music table at ``music_start`` (see
:class:`danceba.data.windows.TokenWindows`). Windows whose music would run past the end of the track are
dropped (AIST++ trains on the common length of music and dance).

``token_music.parquet`` is that music table: the rows of ``music_features_7p5fps.parquet`` and, with
``tempo_factors`` (see :mod:`danceba.features.tempo_augment`), each training song stretched by each factor,
keyed ``<music_id>x<factor>``; the training sequences' stretched copies are token rows of split ``train``
named ``<sequence>x<factor>`` on that music. Without factors it is a copy of the 7.5 fps table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from danceba import tables
from danceba.data.windows import read_sequence_index
from danceba.features.columns import FRAMES_PER_TOKEN
from danceba.features.tempo_augment import (
    stretch_frames,
    stretched_condition,
    stretched_id,
    stretched_length,
)
from danceba.models.vqvae import SepVQVAE
from danceba.motion.bailando_layout import sliding_windows, to_bailando_layout
from danceba.tokenize_config import TokenizeConfig


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


def music_lengths(music_7p5fps: Path) -> dict[str, int]:
    """{music_id: 7.5 fps frames} of a music table, from its row-group metadata."""
    meta = pq.ParquetFile(music_7p5fps).metadata
    return {key: meta.row_group(i).num_rows for i, key in enumerate(tables.group_keys(music_7p5fps))}


def write_token_music(
    music_60fps: Path, music_7p5fps: Path, train_music: list[str], out: Path, factors: tuple[float, ...]
) -> dict[str, int]:
    """Write the GPT's music table (module docstring) to ``out``; return {music_id: frames} of its rows."""
    metadata = tables.file_metadata(music_7p5fps)
    token_rhythm = metadata.get("token_rhythm", "none")
    conditions = tables.read_all_groups(music_7p5fps, "features")
    for music_id in train_music if factors else []:
        at_60fps = tables.read_group(music_60fps, music_id, "features")
        for factor in factors:
            condition = stretched_condition(at_60fps, conditions[music_id], factor, token_rhythm)
            conditions[stretched_id(music_id, factor)] = condition
    metadata["tempo_factors"] = ",".join(f"{f:.2f}" for f in factors)
    groups = (tables.frame_table("music_id", key, "features", value) for key, value in conditions.items())
    tables.write_grouped_table(out, groups, metadata)
    return {key: len(value) for key, value in conditions.items()}


def write_tokens(
    vqvae: SepVQVAE,
    joints: Path,
    sequences: Path,
    music_60fps: Path,
    music_7p5fps: Path,
    out: Path,
    token_music_out: Path,
    config: TokenizeConfig,
) -> dict[str, int]:
    """Tokenize every window of the selected splits (and the stretched copies of the training split)
    into ``out``, the GPT's music into ``token_music_out``; return window counts per split (the copies
    counted under ``train_tempo``)."""
    if config.window % FRAMES_PER_TOKEN:
        raise ValueError(f"tokenize.window: {config.window} is not a multiple of {FRAMES_PER_TOKEN}")
    index = read_sequence_index(sequences)
    index = index[index["split"].isin(config.splits)]
    known = music_lengths(music_7p5fps)
    for row in index.itertuples():
        if row.music_id not in known:
            raise KeyError(f"{music_7p5fps}: no music features for {row.music_id} (sequence {row.sequence})")
    factors = config.tempo_factors if "train" in config.splits else ()
    train_music = sorted(set(index.loc[index["split"] == "train", "music_id"]))
    lengths = write_token_music(music_60fps, music_7p5fps, train_music, token_music_out, factors)
    counts: dict[str, int] = {}
    vqvae.eval()
    reader = tables.GroupReader(joints)  # one footer read for every sequence

    def copies(row) -> Iterator[tuple[str, str, str, np.ndarray]]:
        """(name, split, music id, joints) of a sequence and, in the training split, its stretched copies."""
        joints_xyz = reader.read(row.sequence, "joints").reshape(-1, 24, 3)
        yield row.sequence, row.split, row.music_id, joints_xyz
        for factor in factors if row.split == "train" else ():
            stretched = stretch_frames(joints_xyz, factor, stretched_length(len(joints_xyz), factor))
            name, music_id = stretched_id(row.sequence, factor), stretched_id(row.music_id, factor)
            yield name, "train", music_id, stretched.astype(np.float32)

    def groups() -> Iterator[pa.Table]:
        for row in tqdm(index.itertuples(), total=len(index), desc="tokenize", unit="seq"):
            for name, split, music_id, joints_xyz in copies(row):
                rows = sequence_token_rows(
                    vqvae, name, split, music_id, joints_xyz, lengths[music_id], config
                )
                if rows is not None:
                    counted = "train_tempo" if name != row.sequence else split
                    counts[counted] = counts.get(counted, 0) + rows.num_rows
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
