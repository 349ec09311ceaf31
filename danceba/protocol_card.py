"""The protocol card: every choice behind the numbers of ``reports/metrics.json``, stored beside them.

``metrics.json`` holds ``{protocol: {row: {metric: value}}}`` plus one top-level entry
``"protocol"`` (:data:`danceba.evaluation.PROTOCOL_CARD_KEY`): this card, a nested dict of numbers and
strings only (lists are joined, booleans and None spelled out), so ``dvc metrics show`` and the seed
sweep read the file as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from danceba.data.aistpp import FPS
from danceba.evaluate_config import EvaluateConfig
from danceba.evaluation import REFERENCE_SETS, Dance
from danceba.features.motion import motion_protocol
from danceba.metrics import metric_protocol


def row_definitions(config: EvaluateConfig) -> dict[str, str]:
    """What each row of the report is, in words (with the config's noise levels)."""
    return {
        "ground_truth": "the ground-truth dances of the evaluated pieces (evaluate.splits)",
        "model": "the model's dances from the piece's own music (generate stage; first codes from the "
        "ground truth, generate.* decoding)",
        "model_sham_music": "the same generation fed the music of another music id (a seeded derangement "
        "over the test music ids, a different tempo where the ids allow; that song's 7.5 fps features "
        "tiled or cropped to the piece's length), scored against the piece's own music: if the model "
        "follows the music, its BAS excess falls to 0",
        "reconstruction": "the ground truth encoded and decoded by the VQ-VAE (whole sequence cut to a "
        "multiple of 8 frames, root integrated from the decoded velocity): the ceiling of the token route",
        "random_codes": "uniform random VQ-VAE codes of the model's length, decoded",
        "mismatched_gt": "ground-truth dances scored against the music of another piece (a seeded "
        "derangement that never keeps the music id)",
        "gt_half_beat_late": "the ground truth delayed by round(0.5 x median music beat interval) frames "
        "(start padded with the first frame, same length): locked to the beat, half a beat off",
        "jitter": f"the piece's mean pose held still plus white noise of {config.jitter_noise_m} m per "
        "coordinate and frame (seeded by evaluate.baseline_seed)",
        "still": f"the piece's first pose held, plus white noise of {config.still_noise_m} m so that the "
        "joint speed has minima (BAS defined); a frozen dance",
    }


def metric_definitions(config: EvaluateConfig) -> dict[str, str]:
    """How each reported metric is computed, in words."""
    level = f"{100 * config.ci_level:g} %"
    return {
        "bas": "Beat Align Score in the protocol's direction (Bailando: mean over music beats of "
        "exp(-d^2 / 2 sigma^2), d = frames to the nearest motion beat), mean over pieces",
        "bas_motion": "the same with the mean over motion beats (FACT's direction), same motion beats",
        "bas_chance": f"BAS of the same motion against its music beats circularly shifted modulo the T-1 "
        f"speed frames, mean over {config.chance_shifts} shifts of a golden-ratio sequence over "
        f"[{config.min_shift_frames}, L - {config.min_shift_frames}] frames (at least "
        f"{config.chance_min_shift_s} s from 0)",
        "bas_excess": "bas - bas_chance per piece (0: no better than the motion's own chance level)",
        "phase_lock_r": "Rayleigh vector strength |mean exp(2 pi i phi)| of the motion beats' phases on "
        "the music beat grid (phi = (f - b_k) / (b_k+1 - b_k); beats outside the grid dropped)",
        "phase_lock_mean_phase": "circular mean phase in beats in [-0.5, 0.5); across pieces, the "
        "circular mean weighted by each piece's R",
        "pfc": f"EDGE's physical foot contact score at {config.pfc_fps} fps (every {FPS // config.pfc_fps}"
        " frames), y-up: root acceleration with its upward component clamped at 0, over its sequence "
        "maximum, times the smaller horizontal per-frame displacement of each foot's ankle and toes, "
        "left x right, mean over frames x 1e4 (lower is better)",
        "foot_skating": f"mean horizontal speed (m/s) of ankles and toes on frame intervals where the joint "
        f"is within {config.contact_height_m} m of its own lowest height at both ends",
        "mean_joint_speed": "mean over frames and the 24 joints of the joint speed (m/s)",
        "fid": "Frechet distance of kinetic (72-d) / geometric (32-d) features to a reference set, "
        "z-scored with the reference's statistics under gt_stats",
        "intervals": f"<metric>_ci_low / _ci_high: {level} percentile bootstrap interval over pieces "
        f"({config.bootstrap} resamples for per-piece metrics, {config.fid_bootstrap} for FIDs, which "
        f"are recomputed per resample with the reference fixed; seed {config.bootstrap_seed}); resampling "
        "duplicates pieces, which raises FID, so its interval can lie above the point value",
    }


def _plain(value: Any) -> Any:
    """A config value as a JSON number or string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return ", ".join(str(_plain(v)) for v in value)
    if isinstance(value, int | float | str):
        return value
    return str(value)


def protocol_settings(name: str) -> dict[str, Any]:
    """Every field of the named motion-feature and metric protocols (``features.*``, ``metrics.*``)."""
    settings = {f"features.{k}": _plain(v) for k, v in dataclasses.asdict(motion_protocol(name)).items()}
    settings |= {f"metrics.{k}": _plain(v) for k, v in dataclasses.asdict(metric_protocol(name)).items()}
    settings["bas_direction"] = f"mean over {metric_protocol(name).bas_average_over} beats"
    settings["bas_motion_direction"] = "mean over motion beats"
    settings["motion_beats"] = (
        "strict local minima (argrelextrema order 1) of the mean joint speed smoothed with a Gaussian "
        f"of sigma {metric_protocol(name).motion_beat_sigma:g} frames"
    )
    settings.pop("features.name")
    settings.pop("metrics.name")
    return settings


def protocol_card(
    config: EvaluateConfig,
    rows: Mapping[str, Sequence[Dance]],
    reference_sizes: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The card: ``config`` (every ``evaluate.*`` field), ``fps``, ``protocols`` (every setting of each
    protocol), ``rows`` (definition and number of pieces), ``reference_sets`` (description and size of
    each FID reference) and ``metrics`` (definitions)."""
    definitions = row_definitions(config)
    references = {}
    for suffix, description in REFERENCE_SETS.items():
        key = f"fid{suffix}"
        if reference_sizes is None or suffix in reference_sizes:
            references[key] = description
        if reference_sizes is not None and suffix in reference_sizes:
            references[f"{key}_n_motions"] = int(reference_sizes[suffix])
    return {
        "config": {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)},
        "fps": FPS,
        "protocols": {name: protocol_settings(name) for name in config.protocols},
        "rows": {
            row: {"definition": definitions.get(row, "a folder of predictions"), "n_pieces": len(dances)}
            for row, dances in rows.items()
        },
        "reference_sets": references,
        "metrics": metric_definitions(config),
    }
