"""The embedded mini dataset: synthetic music and dance written in the AIST++ layout.

Everything is generated from ``MiniDatasetConfig.seed``, so the same config gives byte-identical files
and the pipeline needs no download. It is built to look like dance to the metrics:

- **Music** (``wavs/<music_id>.wav``): drums, bass and chord pads at the AIST tempo of the music id,
  see :mod:`danceba.data.mini_music`.
- **Motion** (``motions/<seq>.pkl``): key poses on the music beats, eased so that the mean joint speed
  has its minima on the beats, see :mod:`danceba.data.mini_motion`. Both draw on the per-genre
  vocabulary of :mod:`danceba.data.mini_styles`.
- **Splits** as the crossmodal ones: per genre the first music id is the test/val music (AIST++'s own,
  e.g. ``mBR0``, ``mHO5``), val = ``sBM`` ``ch01`` and test = ``sBM`` ``ch02`` on it; train = every
  sequence on the other music. ``ignore_list.txt`` names two training sequences whose motion carries
  fitting glitches, as the real list names badly reconstructed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from danceba.atomic import atomic_path, write_text_atomic
from danceba.config import MiniDatasetConfig
from danceba.data.aistpp import FPS, GENRES, AistppLayout, SequenceName, music_tempo_bpm, write_motion_pkl
from danceba.data.mini_motion import DancerStyle, add_fitting_glitches, synthesize_motion
from danceba.data.mini_music import synthesize_music
from danceba.data.mini_styles import GENRE_STYLES

# AIST++'s test/val music digit per genre (crossmodal split); the mini dataset keeps them.
TEST_MUSIC_DIGIT = {"gBR": 0, "gPO": 1, "gLO": 2, "gMH": 3, "gLH": 4, "gHO": 5, "gWA": 0, "gKR": 2, "gJS": 3, "gJB": 5}  # fmt: skip


@dataclass(frozen=True)
class MiniMusic:
    music_id: str
    genre: str
    bpm: float
    split: str  # "train" or "testval"


@dataclass(frozen=True)
class MiniDatasetSummary:
    """What :func:`write_mini_dataset` wrote."""

    root: Path
    musics: tuple[MiniMusic, ...]
    sequences: tuple[str, ...]
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    ignored: tuple[str, ...]
    frames_per_sequence: int


# ----------------------------------------------------------------------------------------------
# Plan and writer
# ----------------------------------------------------------------------------------------------


def _check_config(config: MiniDatasetConfig) -> None:
    """Raise ValueError naming every ``data.mini`` key whose value cannot give a usable dataset."""
    genres = list(config.genres)
    checks = [
        ("genres", bool(genres) and set(genres) <= set(GENRE_STYLES) and len(set(genres)) == len(genres),
         f"need distinct AIST genre codes from {sorted(GENRE_STYLES)}, got {genres}"),
        ("music_per_genre", 2 <= config.music_per_genre <= 6,
         f"need 2..6 (one test/val piece, at least one training piece), got {config.music_per_genre}"),
        ("dancers_per_music", config.dancers_per_music >= 1, f"need >= 1, got {config.dancers_per_music}"),
        ("choreographies_per_dancer", config.choreographies_per_dancer >= 2,
         f"need >= 2 (ch01 is val, ch02 test), got {config.choreographies_per_dancer}"),
        ("seconds", config.seconds >= 2.0, f"need >= 2 s, got {config.seconds}"),
        ("sample_rate", config.sample_rate >= 8000, f"need >= 8000 Hz, got {config.sample_rate}"),
    ]  # fmt: skip
    bad = [f"data.mini.{key}: {why}" for key, ok, why in checks if not ok]
    if bad:
        raise ValueError("; ".join(bad))


def plan_mini_dataset(config: MiniDatasetConfig) -> tuple[tuple[MiniMusic, ...], tuple[SequenceName, ...]]:
    """Music pieces and sequence names the config describes (no files written)."""
    _check_config(config)
    musics, sequences = [], []
    for position, genre in enumerate(config.genres):
        test_digit = TEST_MUSIC_DIGIT[genre]
        for j in range(config.music_per_genre):
            music_id = f"m{genre[1:]}{(test_digit + j) % 6}"
            musics.append(
                MiniMusic(music_id, genre, music_tempo_bpm(music_id), "testval" if j == 0 else "train")
            )
            for d in range(config.dancers_per_music):
                dancer = f"d{position * config.dancers_per_music + d + 1:02d}"
                for c in range(config.choreographies_per_dancer):
                    situation = "sBM" if c < 2 else "sFM"
                    sequences.append(
                        SequenceName(genre, situation, "cAll", dancer, music_id, f"ch{c + 1:02d}")
                    )
    return tuple(musics), tuple(sequences)


def _rng(config: MiniDatasetConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, *key]))


def _genre_key(genre: str) -> int:
    return list(GENRES).index(genre)


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    with atomic_path(path) as tmp:
        soundfile.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")


def write_mini_dataset(root: Path, config: MiniDatasetConfig) -> MiniDatasetSummary:
    """Generate the mini dataset under ``root`` in the AIST++ layout (see the module docstring).

    Deterministic: every file depends only on ``config`` (each has its own seed stream). Files are
    replaced atomically; files of an earlier config with other names are not removed (use a fresh
    folder, as a DVC stage does).
    """
    musics, sequences = plan_mini_dataset(config)
    layout = AistppLayout(Path(root))
    bpm = {m.music_id: m.bpm for m in musics}
    for m in musics:
        rng = _rng(config, 1, _genre_key(m.genre), int(m.music_id[-1]))
        audio = synthesize_music(m.genre, m.bpm, config.seconds, config.sample_rate, rng)
        _write_wav(layout.wav_path(m.music_id), audio, config.sample_rate)

    testval = {m.music_id for m in musics if m.split == "testval"}
    train = [s.name for s in sequences if s.music_id not in testval]
    val = [
        s.name
        for s in sequences
        if s.music_id in testval and s.situation == "sBM" and s.choreography == "ch01"
    ]
    test = [
        s.name
        for s in sequences
        if s.music_id in testval and s.situation == "sBM" and s.choreography == "ch02"
    ]
    pick = _rng(config, 3).choice(len(train), size=min(2, len(train)), replace=False)
    ignored = sorted(train[i] for i in pick)

    n_frames = round(config.seconds * FPS)
    for s in sequences:
        genre, dancer_no, ch = _genre_key(s.genre), int(s.dancer[1:]), int(s.choreography[2:])
        dancer = DancerStyle.draw(_rng(config, 4, genre, dancer_no))
        choreo_rng = _rng(config, 5, genre, dancer_no, ch, int(s.situation == "sFM"))
        rng = _rng(config, 2, genre, int(s.music_id[-1]), dancer_no, ch, int(s.situation == "sFM"))
        poses, transl = synthesize_motion(s.genre, bpm[s.music_id], n_frames, dancer, choreo_rng, rng)
        loss = float(rng.uniform(0.5, 1.5))
        if s.name in ignored:
            poses, loss = add_fitting_glitches(poses, rng), 10.0 * loss
        write_motion_pkl(layout.motion_path(s.name), poses, transl * dancer.scaling, dancer.scaling, loss)

    for split, names in (("train", train), ("val", val), ("test", test)):
        write_text_atomic(layout.split_path(split), "".join(f"{n}\n" for n in sorted(names)))
    write_text_atomic(layout.ignore_list, "".join(f"{n}\n" for n in ignored))
    return MiniDatasetSummary(
        root=layout.root,
        musics=musics,
        sequences=tuple(s.name for s in sequences),
        train=tuple(sorted(train)),
        val=tuple(sorted(val)),
        test=tuple(sorted(test)),
        ignored=tuple(ignored),
        frames_per_sequence=n_frames,
    )
