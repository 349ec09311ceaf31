"""One live progress line per experiment of a sweep or an ablation, read from the experiment's log.

Each experiment (``pipelines.sweep_flow.run_seed``) runs in a subprocess whose stdout and stderr go to
``reports/sweep/seed-<s>.log``. :class:`LogWatcher` tails that file while the process runs and
:func:`parse_progress` reads where it is: the stage (the ``stage <name>: started`` line every stage
entry point logs, ``pipelines.stage.run_stage``) and the last tqdm counter (``train 1a2b:  45%|...|
450/1000``; tqdm writes its updates into the log separated by ``\\r``).

:class:`ProgressLine` shows it. On a terminal it is a tqdm bar per experiment, one line each, updated
in place (``seed-3  train_gpt · train 1a2b  45%|████  | 450/1000``). In a log (stderr not a TTY) it
prints a plain line when the stage changes and at most every ``interval_s`` while the counter moves
(``sweep: seed-3: train_gpt: train 1a2b 450/1000 (45%)``), so a CI log or ``make sweep > out.txt`` stays
readable.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

STAGE_STARTED = re.compile(r"\bstage (?P<stage>[\w.-]+): started\b")
TQDM_COUNTER = re.compile(
    r"(?:^|\s)(?P<desc>[^\s:|][^:|]*?)?:?\s*(?P<pct>\d{1,3})%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)"
)


@dataclass(frozen=True)
class Progress:
    """Where an experiment is: its current stage and the last counter it drew (None: not yet)."""

    stage: str | None = None
    task: str | None = None
    done: int | None = None
    total: int | None = None

    def describe(self) -> str:
        """``train_gpt: train 1a2b 450/1000 (45%)``; ``starting`` before the first stage."""
        text = self.stage or "starting"
        if self.done is not None and self.total:
            task = f"{self.task} " if self.task else ""
            text += f": {task}{self.done}/{self.total} ({100 * self.done // self.total}%)"
        return text


def parse_progress(text: str, previous: Progress = Progress()) -> Progress:
    """The progress after ``text`` (new log output, ``\\r`` or ``\\n`` separated) following ``previous``.

    A new stage resets the counter; a counter seen after the stage line belongs to that stage."""
    progress = previous
    for segment in re.split(r"[\r\n]", text):
        if started := STAGE_STARTED.search(segment):
            progress = Progress(stage=started["stage"])
        elif counter := TQDM_COUNTER.search(segment):
            task = (counter["desc"] or "").strip() or None
            progress = Progress(progress.stage, task, int(counter["n"]), int(counter["total"]))
    return progress


class ProgressLine:
    """The line of one experiment: a tqdm bar on a terminal, throttled plain lines otherwise."""

    _slots: set[int] = set()  # noqa: RUF012 - terminal rows in use, shared by the experiments running now
    _lock = threading.Lock()

    def __init__(
        self, name: str, flow: str = "sweep", stream: TextIO | None = None, interval_s: float = 30.0
    ) -> None:
        self.name, self.flow, self.interval_s = name, flow, interval_s
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.progress, self.printed, self.printed_at = Progress(), "", 0.0
        self.bar: Any = None
        if self.terminal:
            with self._lock:
                self.slot = min(set(range(len(self._slots) + 1)) - self._slots)
                self._slots.add(self.slot)
            self.bar = tqdm(total=0, desc=name, position=self.slot, file=self.stream, leave=True)

    def show(self, progress: Progress, final: bool = False) -> None:
        """Show ``progress`` (a plain line only when the stage changed, the interval passed or ``final``)."""
        if self.bar is not None:
            self._update_bar(progress)
        elif progress != self.progress or final:
            stage_changed = progress.stage != self.progress.stage
            now = time.monotonic()
            text = progress.describe()
            if (stage_changed or final or now - self.printed_at >= self.interval_s) and text != self.printed:
                tqdm.write(f"{self.flow}: {self.name}: {text}", file=self.stream)
                self.printed, self.printed_at = text, now
        self.progress = progress

    def _update_bar(self, progress: Progress) -> None:
        label = f"{self.name} {progress.stage or 'starting'}"
        if progress.task:
            label += f" · {progress.task}"
        self.bar.set_description(label, refresh=False)
        self.bar.total = progress.total or 0
        self.bar.n = progress.done or 0
        self.bar.refresh()

    def close(self, status: str) -> None:
        """The last line: ``status`` (``ok`` / ``failed (exit 1)``) after the last progress."""
        if self.bar is not None:
            self.bar.set_postfix_str(status)
            self.bar.close()
            with self._lock:
                self._slots.discard(self.slot)
        else:
            tqdm.write(f"{self.flow}: {self.name}: {status} ({self.progress.describe()})", file=self.stream)


class LogWatcher:
    """A thread that reads what is appended to ``path`` every ``poll_s`` and shows it on ``line``."""

    def __init__(self, path: Path, line: ProgressLine, poll_s: float = 1.0) -> None:
        self.path, self.line, self.poll_s = Path(path), line, poll_s
        self.offset = self.path.stat().st_size if self.path.exists() else 0  # earlier attempts' output
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, name=f"progress-{line.name}", daemon=True)

    def __enter__(self) -> LogWatcher:
        self.line.show(self.line.progress, final=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.read_new()

    def _watch(self) -> None:
        while not self.stopped.wait(self.poll_s):
            self.read_new()

    def read_new(self) -> None:
        """Parse the bytes appended since the last read and show the result."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        if not data:
            return
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1  # keep a half-written segment for next time
        if cut == 0:
            return
        self.offset += cut
        self.line.show(parse_progress(data[:cut].decode("utf-8", errors="replace"), self.line.progress))
