"""Evaluation plots: music beats against motion beats over time, metric bars beside the paper's, and
BAS excess over its chance level per row with its bootstrap interval."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.ndimage import gaussian_filter

from danceba.atomic import atomic_path
from danceba.evaluation import CI_HIGH, CI_LOW, METRIC_NAMES, PAPER_DANCEBA, PAPER_GROUND_TRUTH, Dance
from danceba.features.motion import motion_beats


def plot_beats(path: Path, dance: Dance, music_beat_onehot: np.ndarray, fps: int = 60) -> None:
    """Smoothed joint speed with its minima (motion beats) and the music beats, over time."""
    speed = np.linalg.norm(np.diff(dance.joints, axis=0), axis=-1).mean(axis=1)
    beats, length = motion_beats(dance.joints)
    music = np.flatnonzero(music_beat_onehot[:length] > 0)
    t = np.arange(length) / fps
    figure, axis = plt.subplots(figsize=(10, 3))
    axis.plot(t, gaussian_filter(speed, 5) * fps, color="0.3", label="mean joint speed (smoothed, m/s)")
    for i, b in enumerate(music):
        axis.axvline(b / fps, color="tab:red", alpha=0.5, lw=1, label="music beat" if i == 0 else None)
    axis.plot(
        beats / fps, gaussian_filter(speed, 5)[beats] * fps, "o", color="tab:blue", ms=4, label="motion beat"
    )
    axis.set(xlabel="time (s)", title=f"{dance.name} ({dance.music_id})")
    axis.legend(loc="upper right", fontsize=8)
    _save(figure, path)


def plot_metric_bars(path: Path, rows: Mapping[str, Mapping[str, float]], protocol: str) -> None:
    """One panel per metric: every row of ``rows`` plus the paper's Danceba and ground-truth values."""
    figure, axes = plt.subplots(1, len(METRIC_NAMES), figsize=(3 * len(METRIC_NAMES), 3.2))
    for axis, metric in zip(axes, METRIC_NAMES, strict=True):
        labels = [*rows, "paper GT", "paper Danceba"]
        values = [rows[r][metric] for r in rows] + [PAPER_GROUND_TRUTH[metric], PAPER_DANCEBA[metric]]
        colors = ["tab:blue"] * len(rows) + ["0.6", "0.4"]
        axis.bar(range(len(values)), values, color=colors)
        axis.set_xticks(range(len(values)), labels, rotation=60, ha="right", fontsize=7)
        axis.set_title(metric)
    figure.suptitle(f"protocol {protocol} (ours: blue; paper, AIST++: grey)")
    _save(figure, path)


def plot_bas_excess(path: Path, rows: Mapping[str, Mapping[str, float]], protocol: str) -> None:
    """BAS minus its chance level per row, with the bootstrap interval: a row that follows the music lies
    clearly above 0 (and above the sham-music control)."""
    names = [r for r in rows if "bas_excess" in rows[r]]
    mean = np.array([rows[r]["bas_excess"] for r in names])
    low = np.array([rows[r].get("bas_excess" + CI_LOW, np.nan) for r in names])
    high = np.array([rows[r].get("bas_excess" + CI_HIGH, np.nan) for r in names])
    errors = np.nan_to_num(np.stack([mean - low, high - mean]), nan=0.0)
    figure, axis = plt.subplots(figsize=(1 + 0.8 * len(names), 3.5))
    colors = ["tab:orange" if r == "model" else "tab:blue" for r in names]
    axis.bar(range(len(names)), mean, yerr=errors, color=colors, capsize=3)
    axis.axhline(0.0, color="0.3", lw=1)
    axis.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    axis.set(ylabel="BAS - chance", title=f"BAS excess over chance, protocol {protocol}")
    _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
