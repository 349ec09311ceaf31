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
  sequence on the other music; the test/val music's other sequences are in no split. ``ignore_list.txt``
  names ``ignored_train`` training sequences (and ``ignored_other`` of those in no split) whose motion
  carries fitting glitches, as the real list names badly reconstructed ones.
- **Size**: a grid of genres x music x dancers x choreographies, optionally trimmed (``sequences``,
  ``train_sequences``) at evenly spaced positions; each dance lasts ``seconds`` (basic, ``sBM``) or
  ``advanced_seconds`` (``sFM``), optionally drawn around that (``seconds_spread``), and each piece of
  music as long as its longest dance. The defaults keep the embedded dataset's bytes;
  ``configs/scale.yaml`` gives AIST++'s shape (1,408 sequences, 1.1 M frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from danceba.atomic import atomic_path, write_text_atomic
from danceba.data.aistpp import FPS, GENRES, AistppLayout, SequenceName, music_tempo_bpm, write_motion_pkl
from danceba.data.data_config import MiniDatasetConfig
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
    frames_per_sequence: int  # of a basic dance without ``seconds_spread`` (every dance by default)
    frames: int  # of all the dances together


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
        ("basic_choreographies", 2 <= config.basic_choreographies <= config.choreographies_per_dancer,
         f"need 2..choreographies_per_dancer (ch01 val, ch02 test are basic), got {config.basic_choreographies}"),
        ("seconds", config.seconds * (1 - config.seconds_spread) >= 2.0,
         f"need >= 2 s for the shortest dance, got {config.seconds} with spread {config.seconds_spread}"),
        ("advanced_seconds", config.advanced_seconds == 0 or config.advanced_seconds * (1 - config.seconds_spread) >= 2.0,
         f"need 0 (= seconds) or >= 2 s for the shortest dance, got {config.advanced_seconds}"),
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
                    situation = "sBM" if c < config.basic_choreographies else "sFM"
                    sequences.append(
                        SequenceName(genre, situation, "cAll", dancer, music_id, f"ch{c + 1:02d}")
                    )
    return tuple(musics), _kept_sequences(config, musics, sequences)


def crossmodal_split(sequence: SequenceName, testval_music: set[str]) -> str:
    """``train`` (on a training piece), ``val`` / ``test`` (basic ``ch01`` / ``ch02`` on a test/val piece)
    or ``other`` (the rest of the test/val pieces' sequences: in no crossmodal split)."""
    if sequence.music_id not in testval_music:
        return "train"
    if sequence.situation == "sBM" and sequence.choreography in ("ch01", "ch02"):
        return "val" if sequence.choreography == "ch01" else "test"
    return "other"


def _evenly_spread(items: list, count: int) -> list:
    """``count`` of ``items`` at evenly spaced positions (all of them when ``count`` is their number)."""
    return [items[(i * len(items)) // count] for i in range(count)]


def _kept_sequences(
    config: MiniDatasetConfig, musics: list[MiniMusic], grid: list[SequenceName]
) -> tuple[SequenceName, ...]:
    """The grid trimmed to ``sequences`` / ``train_sequences`` (0 = all), in grid order."""
    if not config.sequences and not config.train_sequences:
        return tuple(grid)
    testval = {m.music_id for m in musics if m.split == "testval"}
    by_split: dict[str, list[SequenceName]] = {"train": [], "val": [], "test": [], "other": []}
    for s in grid:
        by_split[crossmodal_split(s, testval)].append(s)
    n_train = config.train_sequences or len(by_split["train"])
    fixed = n_train + len(by_split["val"]) + len(by_split["test"])
    n_other = config.sequences - fixed if config.sequences else len(by_split["other"])
    bad = []
    if not 1 <= n_train <= len(by_split["train"]):
        bad.append(f"data.mini.train_sequences: the grid has {len(by_split['train'])}, got {n_train}")
    if not 0 <= n_other <= len(by_split["other"]):
        bad.append(
            f"data.mini.sequences: need {fixed}..{fixed + len(by_split['other'])} (val, test and "
            f"{n_train} training sequences, plus up to the grid's {len(by_split['other'])} in no split), "
            f"got {config.sequences}"
        )
    if bad:
        raise ValueError("; ".join(bad))
    kept = set(_evenly_spread(by_split["train"], n_train) + _evenly_spread(by_split["other"], n_other))
    kept |= set(by_split["val"] + by_split["test"])
    return tuple(s for s in grid if s in kept)


def _rng(config: MiniDatasetConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, *key]))


def _genre_key(genre: str) -> int:
    return list(GENRES).index(genre)


def _sequence_key(s: SequenceName) -> tuple[int, ...]:
    """(genre, music digit, dancer, choreography, advanced?): the integers seeding a sequence's streams."""
    return (_genre_key(s.genre), int(s.music_id[-1]), int(s.dancer[1:]), int(s.choreography[2:]),
            int(s.situation == "sFM"))  # fmt: skip


def sequence_frames(config: MiniDatasetConfig, s: SequenceName) -> int:
    """60 fps frames of one dance: its mean length (``seconds``, or ``advanced_seconds`` for an advanced
    one), times U(1 - spread, 1 + spread) from its own seed stream when ``seconds_spread`` > 0."""
    seconds = config.advanced_seconds if s.situation == "sFM" and config.advanced_seconds else config.seconds
    if config.seconds_spread:
        spread = config.seconds_spread
        seconds *= float(_rng(config, 7, *_sequence_key(s)).uniform(1 - spread, 1 + spread))
    return round(seconds * FPS)


def _music_seconds(config: MiniDatasetConfig, longest_frames: int) -> float:
    """A piece lasts ``seconds``, or as long as its longest dance (to the next sample) when that one is longer."""
    if longest_frames <= round(config.seconds * FPS):
        return config.seconds
    return math.ceil(longest_frames * config.sample_rate / FPS) / config.sample_rate


def _drawn(config: MiniDatasetConfig, stream: int, names: list[str], count: int, key: str) -> list[str]:
    """``count`` of ``names`` drawn without replacement from seed stream ``stream``."""
    if count > len(names):
        raise ValueError(f"data.mini.{key}: only {len(names)} sequences to draw from, got {count}")
    return [names[i] for i in _rng(config, stream).choice(len(names), size=count, replace=False)]


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
    frames = {s.name: sequence_frames(config, s) for s in sequences}
    for m in musics:
        longest = max((frames[s.name] for s in sequences if s.music_id == m.music_id), default=0)
        rng = _rng(config, 1, _genre_key(m.genre), int(m.music_id[-1]))
        audio = synthesize_music(m.genre, m.bpm, _music_seconds(config, longest), config.sample_rate, rng)
        _write_wav(layout.wav_path(m.music_id), audio, config.sample_rate)

    testval = {m.music_id for m in musics if m.split == "testval"}
    split_of = {s.name: crossmodal_split(s, testval) for s in sequences}
    train, val, test, other = (
        [n for n in split_of if split_of[n] == k] for k in ("train", "val", "test", "other")
    )
    ignored = sorted(
        _drawn(config, 3, train, config.ignored_train, "ignored_train")
        + (_drawn(config, 6, other, config.ignored_other, "ignored_other") if config.ignored_other else [])
    )

    for s in sequences:
        genre, music_digit, dancer_no, ch, advanced = _sequence_key(s)
        dancer = DancerStyle.draw(_rng(config, 4, genre, dancer_no))
        choreo_rng = _rng(config, 5, genre, dancer_no, ch, advanced)
        rng = _rng(config, 2, genre, music_digit, dancer_no, ch, advanced)
        poses, transl = synthesize_motion(s.genre, bpm[s.music_id], frames[s.name], dancer, choreo_rng, rng)
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
        frames_per_sequence=round(config.seconds * FPS),
        frames=sum(frames.values()),
    )
