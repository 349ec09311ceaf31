"""Training windows cut from the stage tables: motion windows for the VQ-VAE, token windows for the GPT.

Bailando trains on 240-frame windows (4 s at 60 fps) with a stride ``move`` (40 or 8 frames); one
window is 30 motion tokens at 7.5 Hz and is paired with the 7.5 fps music frames
``music[start // 8 : start // 8 + 30]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from danceba import tables
from danceba.genres import ANY_GENRE
from danceba.motion.bailando_layout import sliding_windows, to_bailando_layout, with_root_velocity


def read_sequence_index(sequences: Path) -> pd.DataFrame:
    """The ``sequences.parquet`` index as a DataFrame (one row per sequence)."""
    return pq.read_table(sequences).to_pandas()


def sequences_in_splits(sequences: Path, splits: Iterable[str]) -> list[str]:
    """Names of the sequences whose split is one of ``splits`` (train / val / test / none)."""
    index = read_sequence_index(sequences)
    wanted = set(splits)
    names = index.loc[index["split"].isin(wanted), "sequence"].tolist()
    if not names:
        raise ValueError(f"{sequences}: no sequences in splits {sorted(wanted)}")
    return names


def load_joints(joints: Path, names: Iterable[str]) -> dict[str, np.ndarray]:
    """{sequence: (T, 24, 3) float32} for the given names, read row group by row group."""
    keys = set(tables.group_keys(joints))
    out = {}
    for name in names:
        if name not in keys:
            raise KeyError(f"{joints}: no joints for sequence {name!r}")
        out[name] = tables.read_group(joints, name, "joints").reshape(-1, 24, 3)
    return out


def motion_windows(joints: Mapping[str, np.ndarray], length: int, stride: int) -> np.ndarray:
    """Every full ``length``-frame window with stride ``stride``, in Bailando's 72-d layout.

    joints {name: (T, 24, 3)} -> windows (N, length, 72) float32 (channels [:3] the absolute root,
    the rest root-relative). Sequences shorter than ``length`` give no window.
    """
    chunks = [sliding_windows(to_bailando_layout(s), length=length, stride=stride) for s in joints.values()]
    if not any(len(c) for c in chunks):
        raise ValueError(f"no sequence is at least {length} frames long")
    return np.concatenate(chunks).astype(np.float32)


class MotionWindows(Dataset):
    """The windows of :func:`motion_windows`, cut when asked for: memory holds each sequence once.

    joints {name: (T, 24, 3)} -> item i (length, 72) float32, equal to ``motion_windows(joints, length,
    stride)[i]``, or to ``with_root_velocity`` of it when ``root_velocity`` (the VQ-VAE's phase 2). An
    array of every window holds each frame ``length / stride`` times: at the paper's phase 2 (AIST++,
    240-frame windows, stride 8) 73,600 windows, 5.1 GB, and as much again for the velocity copy.
    """

    def __init__(
        self, joints: Mapping[str, np.ndarray], length: int, stride: int, root_velocity: bool = False
    ) -> None:
        if length < 1 or stride < 1:
            raise ValueError(f"length and stride must be positive, got length={length}, stride={stride}")
        self.layouts = [to_bailando_layout(s).astype(np.float32) for s in joints.values()]
        starts = [
            (k, start)
            for k, layout in enumerate(self.layouts)
            for start in range(0, len(layout) - length + 1, stride)
        ]
        if not starts:
            raise ValueError(f"no sequence is at least {length} frames long")
        self.starts = np.asarray(starts, dtype=np.int64)  # (N, 2): sequence, first frame
        self.length, self.root_velocity = length, root_velocity

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> torch.Tensor:
        sequence, start = self.starts[i]
        window = torch.from_numpy(self.layouts[sequence][start : start + self.length])
        return with_root_velocity(window) if self.root_velocity else window.clone()


class TokenWindows(Dataset):
    """GPT training pairs from token windows and the 7.5 fps music of each music id.

    Each item (Bailando's training step): ``up_in, down_in`` = codes[:-1] (block,), ``up_target,
    down_target`` = codes[1:] (block,), ``music`` (block, n_music) = music frames
    ``music_start + 1 .. music_start + block`` — frame j + 1 is paired with input token j to predict
    token j + 1 (the reference's ``music_seq[:, 1:]``), ``genre`` () int64 = the window's genre label
    (:mod:`danceba.genres`; "any genre" when ``genre`` is not given). Music is sliced on the fly, never
    copied per window.
    """

    def __init__(
        self,
        up: np.ndarray,
        down: np.ndarray,
        music_id: list[str],
        music_start: np.ndarray,
        music: Mapping[str, np.ndarray],
        genre: np.ndarray | None = None,
    ) -> None:
        if up.shape != down.shape or up.ndim != 2:
            raise ValueError(
                f"up/down codes: expected two (N, tokens) arrays, got {up.shape} and {down.shape}"
            )
        self.up = torch.as_tensor(up, dtype=torch.long)
        self.down = torch.as_tensor(down, dtype=torch.long)
        self.music_id = list(music_id)
        self.music_start = np.asarray(music_start, dtype=np.int64)
        self.music = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in music.items()}
        self.block = up.shape[1] - 1
        self.genre = (
            torch.full((len(up),), ANY_GENRE) if genre is None else torch.as_tensor(genre, dtype=torch.long)
        )
        if self.genre.shape != (len(up),):
            raise ValueError(f"genre: expected ({len(up)},) labels, got shape {tuple(self.genre.shape)}")
        for mid, start in zip(self.music_id, self.music_start, strict=True):
            if mid not in self.music:
                raise KeyError(f"no music features for music id {mid!r}")
            if start + 1 + self.block > len(self.music[mid]):
                raise ValueError(
                    f"music {mid}: window at token {start} runs past its {len(self.music[mid])} frames"
                )

    def __len__(self) -> int:
        return len(self.up)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        start = int(self.music_start[i]) + 1
        return {
            "up_in": self.up[i, :-1],
            "down_in": self.down[i, :-1],
            "up_target": self.up[i, 1:],
            "down_target": self.down[i, 1:],
            "music": self.music[self.music_id[i]][start : start + self.block],
            "genre": self.genre[i],
        }
