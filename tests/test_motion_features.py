"""Kinetic / geometric motion features and motion beats: hand-computed cases and loop transcriptions."""

from __future__ import annotations

import numpy as np
import pytest

from danceba.features.motion import (
    BAILANDO,
    BODY_SCALES,
    CORRECTED,
    MotionFeatureProtocol,
    extract_motion_features,
    geometric_features,
    geometric_features_batch,
    kinetic_features,
    kinetic_features_batch,
    motion_beats,
    motion_protocol,
    prepare_for_features,
)

# SMPL rest pose (metres, y up) from the per-joint offsets to the parent (EDGE vis.py, facts §3).
PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
OFFSETS = np.array([
    [0.0, 0.0, 0.0], [0.05858135, -0.08228004, -0.01766408], [-0.06030973, -0.09051332, -0.01354254],
    [0.00443945, 0.12440352, -0.03838522], [0.04345142, -0.38646945, 0.008037],
    [-0.04325663, -0.38368791, -0.00484304], [0.00448844, 0.1379564, 0.02682033],
    [-0.01479032, -0.42687458, -0.037428], [0.01905555, -0.4200455, -0.03456167],
    [-0.00226458, 0.05603239, 0.00285505], [0.04105436, -0.06028581, 0.12204243],
    [-0.03483987, -0.06210566, 0.13032329], [-0.0133902, 0.21163553, -0.03346758],
    [0.07170245, 0.11399969, -0.01889817], [-0.08295366, 0.11247234, -0.02370739],
    [0.01011321, 0.08893734, 0.05040987], [0.12292141, 0.04520509, -0.019046],
    [-0.11322832, 0.04685326, -0.00847207], [0.2553319, -0.01564902, -0.02294649],
    [-0.26012748, -0.01436928, -0.03126873], [0.26570925, 0.01269811, -0.00737473],
    [-0.26910836, 0.00679372, -0.00602676], [0.08669055, -0.01063603, -0.01559429],
    [-0.0887537, -0.00865157, -0.01010708],
])  # fmt: skip
NAMES = [
    "root", "lhip", "rhip", "belly", "lknee", "rknee", "spine", "lankle", "rankle", "chest", "ltoes",
    "rtoes", "neck", "linshoulder", "rinshoulder", "head", "lshoulder", "rshoulder", "lelbow", "relbow",
    "lwrist", "rwrist", "lhand", "rhand",
]  # fmt: skip
J = {n: i for i, n in enumerate(NAMES)}


def rest_pose() -> np.ndarray:
    pose = np.zeros((24, 3))
    for i in range(1, 24):
        pose[i] = pose[PARENTS[i]] + OFFSETS[i]
    return pose + np.array([0.0, 0.95, 0.0])


def still(frames: int) -> np.ndarray:
    return np.repeat(rest_pose()[None], frames, axis=0)


# ---------------------------------------------------------------- reference loop transcriptions


def loop_kinetic(p: np.ndarray, bug: bool, ft: float = 1 / 60, w: int = 2) -> np.ndarray:
    """Per joint, per frame transcription of the published kinetic features (y up)."""
    T, out = len(p), []
    for j in range(p.shape[1]):
        kh = kv = ee = 0.0
        for i in range(1, T):
            v, n = np.zeros(3), 0
            for k in range(-w, w + 1):
                if i + k - 1 < 0 or i + k >= T:
                    continue
                v += p[i + k, j] - p[i + k - 1, j]
                n += 1
            v = v / (n * ft)
            kh += v[0] ** 2 + v[2] ** 2
            kv += v[1] ** 2
            a, n = np.zeros(3), 0
            for k in range(-w, w + 1):
                if i + k - 1 < 0 or i + k + 1 >= T:
                    continue
                v2 = (p[i + k + 1, j] - p[i + k, j]) / ft
                v1 = p[i + k, j] - p[i + k - 1, j] / ft if bug else (p[i + k, j] - p[i + k - 1, j]) / ft
                a += (v2 - v1) / ft
                n += 1
            ee += np.linalg.norm(a / n)
        out += [kh / (T - 1), kv / (T - 1), ee / (T - 1)]
    return np.array(out, dtype=np.float32)


LOOP_TABLE = [  # written from the facts' list of the 32 features
    ("nmove", "neck rhip lhip rwrist", 1.8, "hl"), ("nmove", "neck lhip rhip lwrist", 1.8, "hl"),
    ("nplane", "chest neck neck rwrist", 0.2, "hl"), ("nplane", "chest neck neck lwrist", 0.2, "hl"),
    ("move", "belly chest chest rwrist", 1.8, "hl"), ("move", "belly chest chest lwrist", 1.8, "hl"),
    ("angle", "relbow rshoulder relbow rwrist", 0, 110), ("angle", "lelbow lshoulder lelbow lwrist", 0, 110),
    ("nplane", "lshoulder rshoulder lwrist rwrist", 2.5, "sw"),
    ("move", "lwrist rwrist rwrist lwrist", 1.4, "hl"), ("move", "rwrist root lwrist root", 1.4, "hl"),
    ("move", "lwrist root rwrist root", 1.4, "hl"), ("fast", "rwrist", 2.5, "hl"),
    ("fast", "lwrist", 2.5, "hl"), ("plane", "root lhip ltoes rankle", 0.38, "hl"),
    ("plane", "root rhip rtoes lankle", 0.38, "hl"), ("nplane", "zero y_unit y_min rankle", 1.2, "hl"),
    ("nplane", "zero y_unit y_min lankle", 1.2, "hl"), ("nplane", "lhip rhip lankle rankle", 2.1, "hw"),
    ("angle", "rknee rhip rknee rankle", 0, 110), ("angle", "lknee lhip lknee lankle", 0, 110),
    ("fast", "rankle", 2.5, "hl"), ("fast", "lankle", 2.5, "hl"),
    ("angle", "neck root rshoulder relbow", 25, 180), ("angle", "neck root lshoulder lelbow", 25, 180),
    ("angle", "neck root rhip rknee", 50, 180), ("angle", "neck root lhip lknee", 50, 180),
    ("plane", "rankle neck lankle root", 0.5, "hl"), ("angle", "neck root zero y_unit", 70, 110),
    ("nplane", "zero minus_y_unit y_min rwrist", -1.2, "hl"),
    ("nplane", "zero minus_y_unit y_min lwrist", -1.2, "hl"), ("fast", "root", 2.3, "hl"),
]  # fmt: skip


def loop_geometric(p: np.ndarray, tpf: float) -> np.ndarray:
    """Per frame, per feature transcription of the published geometric features (y up)."""
    rows = []
    for t in range(1, len(p)):
        virtual = {
            "zero": np.zeros(3),
            "y_unit": np.array([0.0, 1, 0]),
            "minus_y_unit": np.array([0.0, -1, 0]),
        }
        virtual["y_min"] = np.array([0.0, min(p[t, :, 1]), 0.0])

        def cur(n, t=t, virtual=virtual):
            return virtual[n] if n in virtual else p[t, J[n]]

        def prev(n, t=t):
            return p[t - 1, J[n]]

        row = []
        for kind, names, x, y in LOOP_TABLE:
            n = names.split()
            with np.errstate(invalid="ignore", divide="ignore"):
                if kind == "angle":
                    u, v = cur(n[1]) - cur(n[0]), cur(n[3]) - cur(n[2])
                    ang = np.degrees(np.arccos(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))))
                    row.append(x < ang < y)
                    continue
                th = x * BODY_SCALES[y]
                if kind == "move":
                    vel = cur(n[2]) - cur(n[0]) - (prev(n[2]) - prev(n[0]))
                    direction = cur(n[1]) - cur(n[0])
                    row.append(np.dot(vel, direction) / np.linalg.norm(direction) / tpf > th)
                elif kind == "nmove":
                    vel = cur(n[3]) - cur(n[0]) - (prev(n[3]) - prev(n[0]))
                    direction = np.cross(cur(n[2]) - cur(n[0]), cur(n[1]) - cur(n[0]))
                    row.append(np.dot(vel, direction) / np.linalg.norm(direction) / tpf > th)
                elif kind == "plane":
                    normal = np.cross(cur(n[2]) - cur(n[0]), cur(n[1]) - cur(n[0]))
                    row.append(np.dot(normal, cur(n[3]) - cur(n[0])) / np.linalg.norm(normal) > th)
                elif kind == "nplane":
                    normal = cur(n[1]) - cur(n[0])
                    row.append(np.dot(normal, cur(n[3]) - cur(n[2])) / np.linalg.norm(normal) > th)
                else:
                    row.append(np.linalg.norm(cur(n[0]) - prev(n[0])) / tpf > th)
        rows.append(row)
    return np.array(rows, dtype=np.float32).mean(axis=0)


def random_dance(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Rest pose with per-joint jitter and a random walk: features neither all 0 nor all 1."""
    walk = np.cumsum(rng.normal(scale=0.012, size=(frames, 24, 3)), axis=0)
    return still(frames) + rng.normal(scale=0.12, size=(1, 24, 3)) + walk


# ---------------------------------------------------------------- kinetic


def test_kinetic_constant_velocity_along_x_hand_values() -> None:
    p = np.zeros((5, 24, 3))
    p[:, 3, 0] = 1.0 + 0.1 * np.arange(5)  # belly: 0.1 m per frame = 6 m/s along x
    corrected = kinetic_features(p, CORRECTED)
    buggy = kinetic_features(p, BAILANDO)
    np.testing.assert_allclose(corrected[9:12], [36.0, 0.0, 0.0], atol=1e-9)
    # Bug: v2 - v1 = 59 x[m] for linear x, so each term is 3540 x[m]. Frames 1-3 average m = 1..3
    # (mean 1.2), frame 4 averages m = 2..3 (mean 1.25): (3 * 1.2 + 1.25) / 4 * 3540 = 4292.25.
    np.testing.assert_allclose(buggy[9:12], [36.0, 0.0, 4292.25], rtol=1e-6)
    assert np.count_nonzero(buggy) == 2 and np.count_nonzero(np.abs(corrected) > 1e-9) == 1


def test_kinetic_vertical_motion_and_constant_acceleration() -> None:
    p = np.zeros((6, 24, 3))
    p[:, 0, 1] = 0.05 * np.arange(6)  # root rises 3 m/s
    p[:, 5, 2] = 0.001 * np.arange(6) ** 2  # rknee: constant acceleration 2 mm / frame^2 = 7.2 m/s^2
    f = kinetic_features(p, CORRECTED)
    np.testing.assert_allclose(f[0:3], [0.0, 9.0, 0.0], atol=1e-9)
    assert f[17] == pytest.approx(7.2, rel=1e-6)
    assert f[16] == 0.0 and f[15] > 0.0  # z is horizontal when y is up


@pytest.mark.parametrize("protocol, bug", [(BAILANDO, True), (CORRECTED, False)])
def test_kinetic_matches_loop_transcription(rng: np.random.Generator, protocol, bug) -> None:
    for frames in (3, 4, 12):
        p = rng.normal(size=(frames, 24, 3)) + rng.normal(size=(1, 24, 3)) * 2.0
        np.testing.assert_allclose(kinetic_features(p, protocol), loop_kinetic(p, bug), rtol=2e-6, atol=1e-6)


def test_kinetic_sliding_window_is_a_protocol_choice(rng: np.random.Generator) -> None:
    p = rng.normal(size=(9, 24, 3))
    narrow = MotionFeatureProtocol(name="w1", sliding_window=1)
    np.testing.assert_allclose(kinetic_features(p, narrow), loop_kinetic(p, True, w=1), rtol=2e-6, atol=1e-6)
    assert not np.allclose(kinetic_features(p, narrow), kinetic_features(p, BAILANDO))


def test_up_axis_z_matches_y_up_after_rotation(rng: np.random.Generator) -> None:
    p = random_dance(rng, 30)
    z_up = np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)  # 90 deg about x: y becomes z
    protocol = MotionFeatureProtocol(name="z", up_axis="z")
    np.testing.assert_allclose(kinetic_features(z_up, protocol), kinetic_features(p), rtol=1e-5)
    np.testing.assert_array_equal(geometric_features(z_up, protocol), geometric_features(p))
    assert not np.array_equal(geometric_features(z_up), geometric_features(p))


def test_kinetic_bug_depends_on_absolute_position(rng: np.random.Generator) -> None:
    p = rng.normal(size=(10, 24, 3))
    shifted = p + np.array([0.5, 0.0, 0.0])
    assert not np.allclose(kinetic_features(p, BAILANDO)[2::3], kinetic_features(shifted, BAILANDO)[2::3])
    np.testing.assert_allclose(
        kinetic_features(p, CORRECTED), kinetic_features(shifted, CORRECTED), rtol=1e-5
    )


# ---------------------------------------------------------------- geometric


def two_frames(edit) -> np.ndarray:
    p = still(2)
    edit(p)
    return p


def test_geometric_rest_pose_baseline() -> None:
    f = geometric_features(still(3))
    assert f[6] == 0.0 and f[7] == 0.0  # T-pose arms straight: elbow angle ~180 > 110
    assert f[2] == 0.0 and f[16] == 0.0 and f[31] == 0.0
    assert f[28] == 0.0  # upright torso: neck->root is ~180 deg from y_unit


def test_geometric_wrist_above_head_and_bent_elbow() -> None:
    def raise_right_wrist(p):
        p[:, J["rwrist"]] = p[:, J["head"]] + [0.0, 0.3, 0.0]

    f = geometric_features(two_frames(raise_right_wrist))
    assert f[2] == 1.0 and f[3] == 0.0  # nplane(chest, neck, neck, rwrist): right only

    def bend_right_elbow(p):
        p[:, J["rwrist"]] = p[:, J["relbow"]] + [0.0, 0.25, 0.0]  # forearm up: 90 degrees

    f = geometric_features(two_frames(bend_right_elbow))
    assert f[6] == 1.0 and f[7] == 0.0


def test_geometric_lifted_ankle_uses_y_min_of_current_frame() -> None:
    def drop_body_lift_right_foot(p):
        p[1] -= [0.0, 1.0, 0.0]  # with the previous frame's y_min the foot would be "below the floor"
        p[1, [J["rankle"], J["rtoes"]]] += [0.0, 0.4, 0.0]

    f = geometric_features(two_frames(drop_body_lift_right_foot))
    assert f[16] == 1.0 and f[17] == 0.0


def test_geometric_angle_range_is_open() -> None:
    def exact_angles(p):
        p[:, J["neck"]] = p[:, J["root"]] + [0.0, 0.5, 0.0]
        p[:, J["relbow"]] = p[:, J["rshoulder"]] + [0.0, 0.25, 0.0]  # (root - neck, arm): exactly 180
        p[:, J["rwrist"]] = p[:, J["relbow"]] + [0.0, -0.125, 0.0]  # forearm folded: exactly 0

    f = geometric_features(two_frames(exact_angles))
    assert f[23] == 0.0 and f[6] == 0.0


@pytest.mark.parametrize("protocol, expected", [(BAILANDO, 1.0), (CORRECTED, 0.0)])
def test_geometric_fast_root_threshold_depends_on_time_per_frame(protocol, expected) -> None:
    p = still(4) + np.arange(4)[:, None, None] * np.array([0.0075, 0.0, 0.0])  # 0.45 m/s at 60 fps
    # Threshold 2.3 hl = 0.5907 m/s: 0.0075 m x 120 = 0.9 passes, x 60 = 0.45 does not.
    assert geometric_features(p, protocol)[31] == expected


@pytest.mark.parametrize("step, expected", [(-0.004, 1.0), (0.004, 0.0)])
def test_geometric_move_hands_apart(step, expected) -> None:
    def move_right_wrist(p):
        p[1, J["rwrist"]] += [step, 0.0, 0.0]  # rwrist is at -x: a negative step moves it away

    f = geometric_features(two_frames(move_right_wrist), BAILANDO)
    assert f[9] == expected  # 0.004 m x 120 = 0.48 m/s against 1.4 hl = 0.36
    assert geometric_features(two_frames(move_right_wrist), CORRECTED)[9] == 0.0  # 0.24 m/s


@pytest.mark.parametrize("step, expected", [(-0.005, 1.0), (0.005, 0.0)])
def test_geometric_nmove_uses_cross_of_third_and_second_point(step, expected) -> None:
    def move_right_wrist(p):
        p[1, J["rwrist"]] += [0.0, 0.0, step]  # cross(lhip - neck, rhip - neck) points to -z

    assert geometric_features(two_frames(move_right_wrist))[0] == expected


@pytest.mark.parametrize("protocol", [BAILANDO, CORRECTED])
def test_geometric_matches_loop_transcription(rng: np.random.Generator, protocol) -> None:
    p = random_dance(rng, 40)
    want = loop_geometric(p, protocol.geometric_time_per_frame)
    got = geometric_features(p, protocol)
    assert np.count_nonzero((want > 0) & (want < 1)) >= 12  # the comparison exercises many features
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- batching, preparation, protocols


@pytest.mark.parametrize("protocol", [BAILANDO, CORRECTED])
def test_batch_equals_single_across_chunks(rng: np.random.Generator, protocol) -> None:
    seqs = [random_dance(rng, n) for n in (3, 17, 5, 40, 8)]
    k = kinetic_features_batch(seqs, protocol, max_chunk_frames=20)
    g = geometric_features_batch(seqs, protocol, max_chunk_frames=20)
    assert k.shape == (5, 72) and g.shape == (5, 32) and k.dtype == g.dtype == np.float32
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(g[i], geometric_features(s, protocol))
        np.testing.assert_allclose(k[i], kinetic_features(s, protocol), rtol=1e-6)


def test_prepare_caps_predictions_only_and_zero_starts(rng: np.random.Generator) -> None:
    p = rng.normal(size=(1300, 72))
    pred = prepare_for_features(p, BAILANDO, prediction=True)
    gt = prepare_for_features(p, BAILANDO, prediction=False)
    assert pred.shape == (1200, 24, 3) and gt.shape == (1300, 24, 3)
    np.testing.assert_allclose(pred[0, 0], 0.0)
    np.testing.assert_allclose(gt[5, 7], p[5, 21:24] - p[0, 0:3])
    no_shift = MotionFeatureProtocol(name="raw", zero_start=False, max_frames=None)
    np.testing.assert_array_equal(prepare_for_features(p, no_shift, prediction=True), p.reshape(-1, 24, 3))
    seqs = [p, random_dance(rng, 7), random_dance(rng, 30)]
    k, g = extract_motion_features(seqs, BAILANDO, prediction=True, max_chunk_frames=25)
    assert k.shape == (3, 72) and g.shape == (3, 32)
    for i, s in enumerate(seqs):
        prepared = prepare_for_features(s, BAILANDO, prediction=True)
        np.testing.assert_allclose(k[i], kinetic_features(prepared), rtol=1e-6)
        np.testing.assert_array_equal(g[i], geometric_features(prepared))
    with pytest.raises(ValueError, match=r"sequences\[1\]: contains NaN"):
        extract_motion_features([p, np.full((5, 72), np.nan)], BAILANDO, prediction=False)


def test_protocols_and_input_errors() -> None:
    assert motion_protocol("bailando") is BAILANDO and motion_protocol("corrected") is CORRECTED
    assert BAILANDO.acceleration_precedence_bug and BAILANDO.geometric_time_per_frame == 1 / 120
    assert not CORRECTED.acceleration_precedence_bug and CORRECTED.geometric_time_per_frame == 1 / 60
    with pytest.raises(ValueError, match="unknown motion feature protocol"):
        motion_protocol("fact")
    with pytest.raises(ValueError, match="up_axis"):
        MotionFeatureProtocol(name="bad", up_axis="w")
    with pytest.raises(ValueError, match=r"\(T, 24, 3\)"):
        kinetic_features(np.zeros((10, 17, 3)))
    with pytest.raises(ValueError, match="at least 3 frames"):
        kinetic_features(np.zeros((2, 24, 3)))
    with pytest.raises(ValueError, match=r"sequences\[1\].*NaN"):
        geometric_features_batch([np.zeros((4, 24, 3)), np.full((4, 24, 3), np.nan)])


# ---------------------------------------------------------------- motion beats


def test_motion_beats_at_minima_of_speed_profile() -> None:
    speed = 1.5 + np.cos(2 * np.pi * np.arange(200) / 40)  # minima at 20, 60, 100, 140, 180
    x = np.concatenate([[0.0], np.cumsum(speed)])
    p = np.zeros((201, 24, 3))
    p[:, :, 0] = x[:, None]
    beats, length = motion_beats(p)
    assert length == 200
    np.testing.assert_array_equal(beats, [20, 60, 100, 140, 180])
    assert motion_beats(np.zeros((50, 24, 3)))[0].size == 0  # no strict minimum when still
