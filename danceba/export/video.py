"""Dance videos: the SMPL skeleton drawn with matplotlib, encoded (with the music) by ffmpeg.

Frames are rendered off screen (Agg) into one reused figure, two panels side by side: the front view
(x right, y up; the body faces the viewer) and the side view from the body's right (z right, y up), each with fixed axes around
the whole motion's extent and a floor line at the lowest joint height. Left limbs are blue, right limbs
red, the spine grey. Raw RGB frames are piped to the ``ffmpeg`` binary shipped by ``imageio-ffmpeg``
(never downloaded at run time), which encodes H.264 (yuv420p, plays everywhere) and muxes the music as
AAC in the same call, trimmed to the dance's duration. The MP4 is written to a temporary file and renamed
into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from danceba.atomic import atomic_path
from danceba.motion.skeleton import NUM_JOINTS, SMPL_JOINT_NAMES, SMPL_PARENTS

BONES: tuple[tuple[int, int], ...] = tuple((SMPL_PARENTS[j], j) for j in range(1, NUM_JOINTS))
_SIDE_COLOURS = {"l": "tab:blue", "r": "tab:red"}
BONE_COLOURS: tuple[str, ...] = tuple(_SIDE_COLOURS.get(SMPL_JOINT_NAMES[j][0], "dimgrey") for _, j in BONES)
# (title, horizontal axis): front = seen from +z (x to the right), side = seen from the right (-x), z right.
VIEWS: tuple[tuple[str, int], ...] = (("front", 0), ("side", 2))
_DPI = 100


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def _stderr_tail(stderr: str, lines: int = 15) -> str:
    return "\n".join(stderr.strip().splitlines()[-lines:])


def probe_media(path: str | os.PathLike[str]) -> dict:
    """Duration and streams of a media file, parsed from ``ffmpeg -i`` (imageio-ffmpeg ships no ffprobe).

    Returns dict(duration_s: float | None, video_streams: int, audio_streams: int, width: int | None,
    height: int | None); width and height are those of the first video stream.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"media file not found: {path}")
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    stderr = result.stderr
    if "Stream #" not in stderr:
        raise ValueError(f"{path}: ffmpeg cannot read it as media:\n{_stderr_tail(stderr)}")
    duration = re.search(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)", stderr)
    streams = re.findall(r"Stream #\S+.*?: (Video|Audio): (.*)", stderr)
    width = height = None
    for kind, description in streams:
        if kind == "Video":
            size = next(
                (m for part in description.split(",") if (m := re.match(r"(\d+)x(\d+)", part.strip()))), None
            )
            if size:
                width, height = int(size.group(1)), int(size.group(2))
            break
    return {
        "duration_s": None
        if duration is None
        else 3600 * int(duration[1]) + 60 * int(duration[2]) + float(duration[3]),
        "video_streams": sum(kind == "Video" for kind, _ in streams),
        "audio_streams": sum(kind == "Audio" for kind, _ in streams),
        "width": width,
        "height": height,
    }


class SkeletonRenderer:
    """One reused figure drawing a skeleton pose (24, 3) per call to an RGB frame (H, W, 3) uint8."""

    def __init__(self, joints: np.ndarray, size: tuple[int, int], title: str | None = None) -> None:
        width, height = size
        self.figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        self.size = size
        low, high = joints.min(axis=(0, 1)), joints.max(axis=(0, 1))
        margin = 0.1 * float(np.max(high - low)) + 0.05
        widths = [float(high[h] - low[h]) + 2 * margin for _, h in VIEWS]  # same metres per pixel in both
        axes = self.figure.subplots(1, len(VIEWS), squeeze=False, gridspec_kw={"width_ratios": widths})[0]
        self.collections = []
        for ax, (name, horizontal) in zip(axes, VIEWS, strict=True):
            centre, half = (low[horizontal] + high[horizontal]) / 2, (high[horizontal] - low[horizontal]) / 2
            ax.set_xlim(centre - half - margin, centre + half + margin)
            ax.set_ylim(low[1] - 0.3 * margin, high[1] + margin)
            ax.set_aspect("equal", adjustable="box")
            ax.axhline(low[1], color="black", linewidth=1.0)
            ax.set_title(name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            collection = LineCollection([], colors=BONE_COLOURS, linewidths=2.0, capstyle="round")
            ax.add_collection(collection)
            self.collections.append((collection, horizontal))
        if title:
            self.figure.suptitle(title, fontsize=9)
        self.figure.tight_layout()

    def render(self, pose: np.ndarray) -> np.ndarray:
        """pose (24, 3) metres -> RGB frame (H, W, 3) uint8."""
        for collection, horizontal in self.collections:
            points = pose[:, [horizontal, 1]]
            collection.set_segments([points[[parent, child]] for parent, child in BONES])
        self.canvas.draw()
        rgba = np.asarray(self.canvas.buffer_rgba())
        width, height = self.size
        if rgba.shape[:2] != (height, width):
            raise RuntimeError(
                f"rendered frame is {rgba.shape[1]}x{rgba.shape[0]}, expected {width}x{height}"
            )
        return np.ascontiguousarray(rgba[..., :3])


def _check_inputs(joints: np.ndarray, fps: float, size: tuple[int, int], render_fps: float) -> None:
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise ValueError(f"joints: expected shape (T >= 1, 24, 3), got {joints.shape}")
    if not np.all(np.isfinite(joints)):
        raise ValueError("joints: contains NaN or infinite values")
    if not (fps > 0 and render_fps > 0):
        raise ValueError(f"fps and render_fps: must be > 0, got {fps} and {render_fps}")
    if len(size) != 2 or any(int(s) != s or s < 16 or s % 2 for s in size):
        raise ValueError(f"size: expected (width, height), even integers >= 16 (H.264 yuv420p), got {size}")


def frame_indices(n_frames: int, fps: float, render_fps: float) -> np.ndarray:
    """Source frame shown at each output frame: k -> floor(k * fps / render_fps), over the whole duration."""
    n_out = max(1, round(n_frames * render_fps / fps))
    return np.minimum((np.arange(n_out) * fps / render_fps).astype(int), n_frames - 1)


def _ffmpeg_command(
    output: Path, size: tuple[int, int], render_fps: float, duration: float, audio: Path | None
):
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}", "-r", f"{render_fps}"]
    command += ["-i", "pipe:0"]
    if audio is not None:
        command += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "128k"]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]
    command += ["-t", f"{duration:.6f}", "-movflags", "+faststart", "-f", "mp4", str(output)]
    return command


def render_dance_video(
    path: str | os.PathLike[str],
    joints: np.ndarray,
    fps: float = 60.0,
    audio_path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    size: tuple[int, int] = (480, 480),
    render_fps: float = 30.0,
) -> None:
    """Render a dance as an MP4 (H.264 yuv420p, + AAC music when ``audio_path`` is given), atomically.

    Args:
        path: the .mp4 to write.
        joints: (T, 24, 3) joint positions in metres, SMPL order, y-up, at ``fps``.
        fps: frame rate of ``joints``; the video lasts T / fps seconds.
        audio_path: music to mux (any format ffmpeg reads), trimmed to the dance's duration.
        title: text above the panels.
        size: (width, height) in pixels, even.
        render_fps: frame rate of the video (source frames are picked, not interpolated).
    """
    joints = np.asarray(joints, dtype=np.float64)
    _check_inputs(joints, fps, size, render_fps)
    audio = None
    if audio_path is not None:
        audio = Path(audio_path)
        if probe_media(audio)["audio_streams"] < 1:  # raises for a missing or unreadable file
            raise ValueError(f"audio_path: {audio} has no audio stream")
    renderer = SkeletonRenderer(joints, size, title)
    duration = len(joints) / fps
    with atomic_path(path) as tmp, tempfile.TemporaryFile() as stderr:
        command = _ffmpeg_command(tmp, size, render_fps, duration, audio)
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=stderr)
        try:
            for index in frame_indices(len(joints), fps, render_fps):
                process.stdin.write(renderer.render(joints[index]).tobytes())
            process.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg stopped early; its exit status and stderr say why
        except BaseException:
            process.kill()
            process.wait()
            raise
        code = process.wait()
        if code != 0:
            stderr.seek(0)
            tail = _stderr_tail(stderr.read().decode("utf-8", errors="replace"))
            raise RuntimeError(f"ffmpeg failed (exit {code}) writing {path}:\n{tail}")
