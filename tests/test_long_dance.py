"""Per-segment drift and seams of a whole-song dance, on motions with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from danceba.long_dance import frame_jump_percentile, segment_stats, segment_table
from danceba.physical_metrics import FOOT_JOINTS

FPS = 60


def dancing(seconds: float, drift_m_per_s: float = 0.0) -> np.ndarray:
    """(T, 24, 3): arms swinging at 2 Hz, feet planted at 0.02 m, root moving along x."""
    t = np.arange(round(seconds * FPS)) / FPS
    body = np.random.default_rng(0).normal(0.0, 0.3, (24, 3)) + np.array([0.0, 1.0, 0.0])
    joints = np.repeat(body[None], len(t), axis=0)
    joints[:, 16:, 0] += 0.2 * np.sin(2 * np.pi * 2 * t)[:, None]  # arms
    joints[:, FOOT_JOINTS, 1] = 0.02
    joints[:, :, 0] += drift_m_per_s * t[:, None]
    return joints


def test_a_steady_dance_keeps_every_segment_like_the_first():
    stats = segment_stats(dancing(65.0), FPS)
    assert [s.start_s for s in stats] == [0.0, 20.0, 40.0]  # the last 5 s join the third segment
    assert stats[-1].seconds == pytest.approx(25.0)
    for s in stats:
        assert s.joint_speed_ratio == pytest.approx(1.0, abs=0.01)
        assert s.root_offset_m == pytest.approx(0.0, abs=0.01)
        assert s.foot_height_at_contact_m == pytest.approx(0.02)
    assert segment_table(stats)[1]["start_s"] == 20.0


def test_root_drift_grows_with_time_and_a_seam_shows_as_a_jump():
    stats = segment_stats(dancing(60.0, drift_m_per_s=0.05), FPS)
    assert [round(s.root_offset_m, 2) for s in stats] == [0.0, 1.0, 2.0]
    clean = dancing(60.0)
    seamed = clean.copy()
    seamed[30 * FPS :] += np.array([0.3, 0.0, 0.0])  # a 0.3 m jump between two windows
    ceiling = frame_jump_percentile([clean])
    jumps = [s.max_frame_jump_m for s in segment_stats(seamed, FPS)]
    assert jumps[1] == pytest.approx(0.3 + ceiling, abs=0.01) and jumps[1] > 5 * ceiling
    assert max(jumps[0], jumps[2]) <= ceiling * 1.01


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(T >= 2, 24, 3\)"):
        segment_stats(np.zeros((1, 24, 3)), FPS)
    with pytest.raises(ValueError, match="no motion"):
        frame_jump_percentile([np.zeros((1, 24, 3))])
