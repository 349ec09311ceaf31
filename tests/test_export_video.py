"""Dance videos: MP4 with and without music, durations, streams, atomic failure, input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from danceba.data.mini_motion import DancerStyle, synthesize_motion
from danceba.export import video
from danceba.export.video import SkeletonRenderer, frame_indices, probe_media, render_dance_video
from danceba.motion.skeleton import forward_kinematics

SIZE = (160, 128)


@pytest.fixture(scope="module")
def joints() -> np.ndarray:
    """A 2 s mini-dataset dance at 60 fps: (120, 24, 3) metres."""
    rng = np.random.default_rng(3)
    poses, trans = synthesize_motion("gHO", 115.0, 120, DancerStyle.draw(rng), rng, rng)
    return forward_kinematics(poses.astype(np.float64), trans)


def _wav(path: Path, seconds: float, sample_rate: int = 16000) -> Path:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32), sample_rate)
    return path


def test_video_with_music_has_both_streams_and_the_dance_duration(tmp_path: Path, joints: np.ndarray) -> None:
    out = tmp_path / "dance.mp4"
    render_dance_video(out, joints, fps=60, audio_path=_wav(tmp_path / "m.wav", 2.0), title="gHO", size=SIZE)
    info = probe_media(out)
    assert info["video_streams"] == 1 and info["audio_streams"] == 1
    assert info["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert (info["width"], info["height"]) == SIZE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dance.mp4", "m.wav"]  # no temporary left


def test_longer_music_is_trimmed_to_the_dance(tmp_path: Path, joints: np.ndarray) -> None:
    out = tmp_path / "dance.mp4"
    render_dance_video(out, joints, audio_path=_wav(tmp_path / "m.wav", 5.0), size=SIZE, render_fps=15)
    assert probe_media(out)["duration_s"] == pytest.approx(2.0, abs=0.1)


def test_video_without_music_has_no_audio_stream(tmp_path: Path, joints: np.ndarray) -> None:
    out = tmp_path / "silent.mp4"
    render_dance_video(out, joints, size=SIZE, render_fps=15)
    info = probe_media(out)
    assert info["video_streams"] == 1 and info["audio_streams"] == 0
    assert info["duration_s"] == pytest.approx(2.0, abs=0.1)


def test_unreadable_or_missing_audio_fails_and_leaves_nothing(tmp_path: Path, joints: np.ndarray) -> None:
    out = tmp_path / "out" / "dance.mp4"
    (tmp_path / "noise.wav").write_bytes(b"this is not audio" * 10)
    with pytest.raises(ValueError, match=r"noise\.wav"):
        render_dance_video(out, joints, audio_path=tmp_path / "noise.wav", size=SIZE)
    with pytest.raises(FileNotFoundError, match=r"absent\.wav"):
        render_dance_video(out, joints, audio_path=tmp_path / "absent.wav", size=SIZE)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["noise.wav"]


def test_ffmpeg_failure_reports_its_stderr_and_leaves_nothing(
    tmp_path: Path, joints: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = video._ffmpeg_command
    monkeypatch.setattr(
        video, "_ffmpeg_command", lambda *a: [*real(*a)[:-1], "-no_such_option", "1", real(*a)[-1]]
    )
    with pytest.raises(RuntimeError, match=r"(?s)ffmpeg failed.*no_such_option"):
        render_dance_video(tmp_path / "dance.mp4", joints[:30], size=SIZE)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_are_rejected(tmp_path: Path, joints: np.ndarray) -> None:
    with pytest.raises(ValueError, match="joints"):
        render_dance_video(tmp_path / "a.mp4", np.zeros((0, 24, 3)))
    with pytest.raises(ValueError, match="joints"):
        render_dance_video(tmp_path / "a.mp4", joints[:, :22])
    with pytest.raises(ValueError, match="size"):
        render_dance_video(tmp_path / "a.mp4", joints, size=(161, 128))
    with pytest.raises(FileNotFoundError):
        probe_media(tmp_path / "none.mp4")
    (tmp_path / "text.mp4").write_text("not media")
    with pytest.raises(ValueError, match="cannot read"):
        probe_media(tmp_path / "text.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.mp4"]


def test_frame_indices_cover_the_dance_at_the_render_rate() -> None:
    np.testing.assert_array_equal(frame_indices(120, 60, 30), np.arange(0, 120, 2))
    assert len(frame_indices(121, 60, 30)) == 60 and frame_indices(7, 60, 120).max() == 6
    assert len(frame_indices(1, 60, 30)) == 1


def test_renderer_draws_the_pose(joints: np.ndarray) -> None:
    renderer = SkeletonRenderer(joints, SIZE, title=None)
    first, later = renderer.render(joints[0]), renderer.render(joints[60])
    assert first.shape == (SIZE[1], SIZE[0], 3) and first.dtype == np.uint8
    assert (first < 128).any() and (first == 255).mean() > 0.5  # dark bones on a mostly white frame
    assert (first != later).any()
