"""Music-feature speed: seconds of audio processed per second of wall time.

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.bench_features --out bench/out/features.json

On a generated 20 s clip (a click track over a dyad): the first call (numba JIT or cache load, reported
apart), then warm timings (fastest of ``--repeats`` interleaved calls) for 60 fps and 7.5 fps, for
``music_features_for_motion`` (both rates from one decode of a WAV file), and for Bailando's recipe in
plain librosa (two STFTs, 2-D median-filter HPSS) run in the same process as the same-machine
baseline. Ratios are also given against the reference figures measured on this kind of machine
(performance-targets.md: 23.3 s/s at 60 fps, 144 s/s at 7.5 fps).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))

import librosa
import numpy as np
import soundfile

from danceba.atomic import write_text_atomic
from danceba.features import music

REFERENCE_AUDIO_SECONDS_PER_SECOND = {"60fps": 23.3, "7.5fps": 144.0}


def generated_clip(seconds: float, sample_rate: int, bpm: float = 120.0) -> np.ndarray:
    """A 1 kHz click on every beat over a C-E dyad, with a little seeded noise. (n,) float32."""
    rng = np.random.default_rng(0)
    time_s = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = 0.05 * np.sin(2 * np.pi * 261.63 * time_s) + 0.05 * np.sin(2 * np.pi * 329.63 * time_s)
    audio += 0.01 * rng.standard_normal(time_s.size)
    phase = np.mod(time_s, 60.0 / bpm)
    audio += 0.8 * np.exp(-phase / 0.015) * np.minimum(1.0, phase / 0.002) * np.sin(2 * np.pi * 1000 * phase)
    return audio.astype(np.float32)


def reference_recipe(audio: np.ndarray, sample_rate: int, chroma_octaves: int) -> np.ndarray:
    """Bailando's extract_acoustic_feature call by call in plain librosa 0.11: the baseline."""
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=sample_rate), ref=np.max)
    mfcc = librosa.feature.mfcc(S=mel_db)
    harmonic, percussive = librosa.effects.hpss(audio)
    chroma = librosa.feature.chroma_cqt(y=harmonic, sr=sample_rate, n_octaves=chroma_octaves)
    onset = librosa.onset.onset_strength(y=percussive, sr=sample_rate, aggregate=np.median)
    _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sample_rate)
    beat_one_hot = np.zeros_like(onset)
    beat_one_hot[beats] = 1
    tempogram = librosa.feature.tempogram(onset_envelope=onset, sr=sample_rate)
    parts = [mfcc, librosa.feature.delta(mfcc, width=3), chroma, onset[None], beat_one_hot[None], tempogram]
    return np.concatenate(parts).T


def seconds_per_call(functions: list[Callable[[], object]], repeats: int) -> list[float]:
    """Fastest wall time of ``repeats`` calls of each function, calls interleaved.

    The minimum over interleaved calls is the figure least disturbed by other work on a shared
    machine, and interleaving exposes every function to the same background load.
    """
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, spent in zip(functions, times, strict=True):
            start = time.perf_counter()
            function()
            spent.append(time.perf_counter() - start)
    return [min(spent) for spent in times]


def run(seconds: float, repeats: int) -> dict:
    """All measurements as a JSON-ready dict."""
    rates = {
        "60fps": (music.SAMPLE_RATE_60FPS, music.CHROMA_OCTAVES_60FPS),
        "7.5fps": (music.SAMPLE_RATE_7P5FPS, music.CHROMA_OCTAVES_7P5FPS),
    }
    clips = {name: generated_clip(seconds, rate) for name, (rate, _) in rates.items()}
    start = time.perf_counter()
    rate, octaves = rates["60fps"]
    music.bailando_features(clips["60fps"], rate, chroma_octaves=octaves)
    first_call = time.perf_counter() - start
    results: dict = {
        "clip_seconds": seconds,
        "repeats": repeats,
        "first_call_seconds": first_call,
        "rows": {},
    }
    for name, (rate, octaves) in rates.items():
        ours, baseline = seconds_per_call(
            [
                lambda c=clips[name], r=rate, o=octaves: music.bailando_features(c, r, chroma_octaves=o),
                lambda c=clips[name], r=rate, o=octaves: reference_recipe(c, r, o),
            ],
            repeats,
        )
        results["rows"][name] = {
            "seconds_per_clip": ours,
            "audio_seconds_per_second": seconds / ours,
            "baseline_seconds_per_clip": baseline,
            "speedup_vs_baseline_same_run": baseline / ours,
            "ratio_vs_reference_figure": seconds / ours / REFERENCE_AUDIO_SECONDS_PER_SECOND[name],
        }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        soundfile.write(path, generated_clip(seconds, 44100), 44100)
        (both,) = seconds_per_call([lambda: music.music_features_for_motion(path)], repeats)
    results["rows"]["both_rates_from_44k1_wav"] = {
        "seconds_per_clip": both,
        "audio_seconds_per_second": seconds / both,
    }
    return results


def print_table(results: dict) -> None:
    print(f"music features, {results['clip_seconds']:.0f} s clip, fastest of {results['repeats']} warm calls")
    print(f"first call (numba JIT / cache load, 60 fps): {results['first_call_seconds']:.2f} s")
    print(
        f"{'rate':<26}{'s/clip':>8}{'audio s/s':>11}{'baseline s/clip':>17}{'x baseline':>12}{'x ref figure':>14}"
    )
    for name, row in results["rows"].items():
        extra = ""
        if "baseline_seconds_per_clip" in row:
            extra = (
                f"{row['baseline_seconds_per_clip']:>17.3f}{row['speedup_vs_baseline_same_run']:>12.2f}"
                f"{row['ratio_vs_reference_figure']:>14.2f}"
            )
        print(f"{name:<26}{row['seconds_per_clip']:>8.3f}{row['audio_seconds_per_second']:>11.1f}{extra}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/out/features.json", help="where to write the JSON results")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the generated clip")
    parser.add_argument("--repeats", type=int, default=5, help="warm calls per measurement (fastest kept)")
    args = parser.parse_args(argv)
    results = run(args.seconds, args.repeats)
    print_table(results)
    write_text_atomic(args.out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
