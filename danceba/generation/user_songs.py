"""Dance to any song a user has: read and check the songs and models first, then generate and write.

``danceba generate`` is built from these steps, in this order, so that a bad input is refused before
anything is written:

1. :func:`read_song` for every song: decoded with soundfile (WAV, FLAC, OGG, MP3), refused when missing,
   unreadable, silent or shorter than :data:`MIN_SECONDS`; its Bailando features at 7.5 fps (the GPT's
   condition; one frame per motion token).
2. :func:`load_models`: the GPT and VQ-VAE exports, refused when of the wrong kind or architecture, or
   when they do not fit together (GPT vocabulary = VQ-VAE codebook size, GPT music width = 438).
3. :func:`first_codes`: user mode has no ground-truth dance, so the first up/down codes are the most
   frequent first codes of a genre's training dances (``genre_first_codes``).
4. ``generate_dances`` (all songs in one call), then :func:`write_song_outputs` per song: ``<stem>.npz``
   (the evaluation format, ``music_id`` = the stem), ``<stem>.bvh``, ``<stem>.mp4`` (with the song as its
   sound track), each written atomically. The dance lasts 8 × (7.5 fps frames) motion frames at 60 fps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import librosa
import numpy as np
import pyarrow.parquet as pq
import torch

from danceba.evaluation import write_dance
from danceba.features.columns import N_BAILANDO_FEATURES, N_RHYTHM_FEATURES
from danceba.features.music import (
    CHROMA_OCTAVES_7P5FPS,
    CHROMA_OCTAVES_60FPS,
    SAMPLE_RATE_7P5FPS,
    SAMPLE_RATE_60FPS,
    MusicInputError,
    bailando_features,
    read_audio,
    resample,
)
from danceba.features.rhythm import token_condition
from danceba.generation.dances import Song, genre_first_codes
from danceba.models.gpt import CrossCondGPT
from danceba.models.vqvae import SepVQVAER
from danceba.train.checkpoint import CheckpointError
from danceba.trainers.gpt import load_gpt
from danceba.trainers.vqvae import load_vqvae

MIN_SECONDS = 2.0  # shortest song we dance to: 15 generated codes, 128 motion frames
FORMATS = ("npz", "bvh", "mp4")
MOTION_FPS = 60.0


@dataclass(frozen=True)
class UserSong:
    """A song on disk, checked and featurised: ``music_7p5fps`` (T, 438) float32, ``name`` its file stem."""

    path: Path
    name: str
    seconds: float
    music_7p5fps: np.ndarray


def read_song(path: str | Path, min_seconds: float = MIN_SECONDS) -> UserSong:
    """Decode and featurise one song; :class:`MusicInputError` naming the file when it cannot be used."""
    path = Path(path)
    audio, rate = read_audio(path)  # missing, undecodable, empty, non-finite or silent: MusicInputError
    seconds = audio.size / rate
    if seconds < min_seconds:
        raise MusicInputError(f"{path}: too short ({seconds:.2f} s; at least {min_seconds:g} s needed)")
    try:
        music = bailando_features(
            resample(audio, rate, SAMPLE_RATE_7P5FPS),
            SAMPLE_RATE_7P5FPS,
            chroma_octaves=CHROMA_OCTAVES_7P5FPS,
        )
    except librosa.util.exceptions.ParameterError as error:  # e.g. samples so loud they overflow
        raise MusicInputError(f"{path}: cannot compute music features ({error})") from None
    check_finite_features(path, music)
    return UserSong(path, path.stem, seconds, music)


def check_finite_features(path: Path, music: np.ndarray) -> None:
    """Refuse features with NaN or infinite values (a pathological recording) before they reach a model."""
    if not np.isfinite(music).all():
        rows = int((~np.isfinite(music)).any(axis=1).sum())
        raise MusicInputError(
            f"{path}: the music features of {rows} of {len(music)} frames are NaN or infinite "
            "(is the recording clipped or extremely loud?)"
        )


TOKEN_RHYTHM_BY_WIDTH = {
    N_BAILANDO_FEATURES: "none",
    N_BAILANDO_FEATURES + N_RHYTHM_FEATURES: "append",
    N_RHYTHM_FEATURES: "only",
}  # the GPT's n_music -> the music_features.token_rhythm it was trained with


def with_token_rhythm_columns(song: UserSong, token_rhythm: str) -> UserSong:
    """The song's condition as ``music_features.token_rhythm`` builds it (``append``: (T, 459); ``only``:
    (T, 21)), from its own 60 fps beats and onsets."""
    at_60fps = bailando_features(
        resample(*read_audio(song.path), SAMPLE_RATE_60FPS),
        SAMPLE_RATE_60FPS,
        chroma_octaves=CHROMA_OCTAVES_60FPS,
    )
    condition = token_condition(song.music_7p5fps, at_60fps, token_rhythm)
    check_finite_features(song.path, condition)
    return replace(song, music_7p5fps=condition)


def match_music_width(songs: Sequence[UserSong], n_music: int) -> list[UserSong]:
    """The songs' features in the width the GPT reads: 438 as read, 459 or 21 with the token rhythm."""
    token_rhythm = TOKEN_RHYTHM_BY_WIDTH[n_music]
    if token_rhythm == "none":
        return list(songs)
    return [with_token_rhythm_columns(song, token_rhythm) for song in songs]


def check_output_names(songs: Sequence[UserSong]) -> None:
    """Refuse two songs that would write the same output files (same stem, e.g. a.wav and a.flac)."""
    seen: dict[str, Path] = {}
    for song in songs:
        if song.name in seen:
            raise ValueError(f"{song.path}: same output name {song.name!r} as {seen[song.name]}; rename one")
        seen[song.name] = song.path


def load_models(
    gpt_path: Path, vqvae_path: Path, device: str | torch.device = "cpu"
) -> tuple[CrossCondGPT, SepVQVAER]:
    """The GPT and VQ-VAE exports on ``device``, checked to fit each other and the 438-d music features.

    Every refusal is a ``ValueError`` naming the checkpoint file."""
    gpt = _loaded(load_gpt, gpt_path, device)
    vqvae = _loaded(load_vqvae, vqvae_path, device)
    bins, config = vqvae.config.l_bins, gpt.config
    if (config.vocab_up, config.vocab_down) != (bins, bins):
        raise ValueError(
            f"{gpt_path}: wrong architecture for this VQ-VAE: GPT vocabulary (up {config.vocab_up}, down "
            f"{config.vocab_down}) != codebook size {bins} of {vqvae_path}"
        )
    if config.n_music not in TOKEN_RHYTHM_BY_WIDTH:
        raise ValueError(
            f"{gpt_path}: wrong architecture: the GPT reads {config.n_music}-d music, songs give Bailando's "
            f"{N_BAILANDO_FEATURES}-d features, {N_RHYTHM_FEATURES} token rhythm columns, or both"
        )
    return gpt.to(device), vqvae.to(device)


def _loaded(load: Callable, path: Path, device: str | torch.device):
    try:
        return load(path, device)
    except CheckpointError as error:
        raise ValueError(str(error)) from error
    except RuntimeError as error:  # load_state_dict: keys or shapes differ from the stored config
        raise ValueError(
            f"{path}: weights do not match the stored architecture: {str(error)[:300]}"
        ) from error


def most_common_genre(tokens: Path) -> str:
    """The genre code (``gBR``, ...) with the most training sequences in ``tokens``."""
    table = pq.read_table(tokens, columns=["sequence", "split"]).to_pandas()
    names = table.loc[table["split"] == "train", "sequence"].drop_duplicates()
    counts = Counter(name[:3] for name in names)
    if not counts:
        raise ValueError(f"{tokens}: no training windows to take first codes from")
    return max(sorted(counts), key=counts.__getitem__)  # ties: alphabetical


def first_codes(tokens: Path, genre: str | None, vocab: int) -> tuple[str, tuple[int, int]]:
    """(genre, (up, down)): the most frequent first codes of ``genre`` (default: the most common genre)."""
    try:
        firsts = genre_first_codes(tokens)
        genre = genre or most_common_genre(tokens)
    except (OSError, KeyError) as error:
        raise ValueError(f"{tokens}: not a tokens table ({error})") from error
    if genre not in firsts:
        raise ValueError(f"{tokens}: no training dances of genre {genre!r}; available: {sorted(firsts)}")
    up, down = firsts[genre]
    if max(up, down) >= vocab:
        raise ValueError(
            f"{tokens}: codes of another VQ-VAE (first code {max(up, down)} >= vocabulary {vocab})"
        )
    return genre, (up, down)


def to_generation_songs(
    songs: Sequence[UserSong], first: tuple[int, int], genre: str | None = None
) -> list[Song]:
    """The songs as ``danceba.generation.dances.Song`` (same first codes and genre for every song)."""
    return [Song(song.name, song.music_7p5fps, *first, genre=genre) for song in songs]


def parse_formats(text: str) -> tuple[str, ...]:
    """``"npz,bvh"`` -> ("npz", "bvh"); unknown or empty lists raise ``ValueError``."""
    formats = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise ValueError(f"expected a comma-separated subset of {','.join(FORMATS)}, got {text!r}")
    return formats


def output_paths(out: Path, name: str, formats: Sequence[str]) -> dict[str, Path]:
    """{format: ``out/<name>.<format>``}."""
    return {fmt: Path(out) / f"{name}.{fmt}" for fmt in formats}


def write_song_outputs(
    out: Path, song: UserSong, joints: np.ndarray, formats: Sequence[str], bvh_refine_steps: int = 0
) -> list[Path]:
    """Write one song's dance (T, 24, 3) in every format, each file atomically; return the paths.

    Lazy imports: the BVH and video exporters (scipy IK, matplotlib, ffmpeg) load only when asked for."""
    written = []
    for fmt, path in output_paths(out, song.name, formats).items():
        if fmt == "npz":
            write_dance(path, joints, song.name)
        elif fmt == "bvh":
            from danceba.export.bvh import write_bvh_from_joints

            write_bvh_from_joints(path, joints, fps=MOTION_FPS, refine_steps=bvh_refine_steps)
        else:
            from danceba.export.video import render_dance_video

            render_dance_video(path, joints, fps=MOTION_FPS, audio_path=song.path, title=song.name)
        written.append(path)
    return written


def write_dances(
    out: Path, songs: Sequence[UserSong], dances: Mapping[str, np.ndarray], formats: Sequence[str]
) -> list[Path]:
    """Write every song's dance in every format; return the paths in order.

    All or nothing: when a write fails, the files this call created are removed (and ``out`` when this
    call created it and it is left empty) before the error propagates; files that existed before and
    were already replaced keep their new content."""
    out = Path(out)
    targets = [
        (song, fmt, path) for song in songs for fmt, path in output_paths(out, song.name, formats).items()
    ]
    existed = {path for _, _, path in targets if path.exists()}
    out_existed = out.exists()
    written: list[Path] = []
    try:
        for song, fmt, path in targets:
            write_song_outputs(out, song, dances[song.name], (fmt,))
            written.append(path)
    except BaseException:
        for path in written:
            if path not in existed:
                path.unlink(missing_ok=True)
        if not out_existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    return written
