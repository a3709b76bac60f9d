"""Progress on stderr for every CLI command that shows it (score, train, compare, runs launch).

On a terminal: one tqdm bar per phase, redrawn in place. Anywhere else (a log file, CI, a pipe, the
job manager's job.log): plain log lines, at most one every ``interval_s`` seconds while a phase runs
and one when it ends ("warm-up: 150/150 (100%), loss 3.210, done in 12s"), so a short phase is one
line and a log never fills with half-drawn bars.

    progress = ProgressLog()
    progress.update("train", done=40, total=200, message="loss 3.21")   # or progress(engine_progress)
    progress.close()
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

INTERVAL_ENV = "DELT_PROGRESS_INTERVAL_S"
DEFAULT_INTERVAL_S = 10.0


def log_interval() -> float:
    """Seconds between progress lines when stderr is not a terminal: ``$DELT_PROGRESS_INTERVAL_S``, else 10."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def format_seconds(seconds: float) -> str:
    """ "42s", "3m05s", "1h02m"."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressLog:
    """Progress of a sequence of phases: a tqdm bar per phase on a terminal, else log lines.

    Callable with an engine ``Progress`` (phase, done, total, message), so it serves as ``on_progress``.

    Args:
        enabled: False shows nothing (e.g. a non-zero torchrun rank).
        stream: where to write (default: sys.stderr at the time of writing).
        interactive: bars (True) or log lines (False); default: whether ``stream`` is a terminal.
        interval_s: seconds between log lines within a phase (default ``log_interval()``).
        unit: what ``done`` counts, shown in bars and lines (e.g. "step"); "" shows none.
        bar_options: extra tqdm arguments for the bars (e.g. bar_format, mininterval).
    """

    def __init__(
        self,
        enabled: bool = True,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        interval_s: float | None = None,
        unit: str = "",
        **bar_options,
    ):
        self.enabled, self._stream, self.unit, self.bar_options = enabled, stream, unit, bar_options
        self.interactive = interactive
        self.interval_s = log_interval() if interval_s is None else interval_s
        self.phase: str | None = None
        self.bar = None
        self.finished = False
        self._state: tuple | None = None  # (done, total, message) of the last update
        self._logged: tuple | None = None  # ... of the last line written
        self._start = self._last_line = 0.0

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def _is_interactive(self) -> bool:
        if self.interactive is None:
            isatty = getattr(self.stream, "isatty", None)
            self.interactive = bool(isatty and isatty())
        return self.interactive

    def __call__(self, progress) -> None:
        self.update(progress.phase, progress.done, progress.total, progress.message)

    def update(self, phase: str, done: float, total: float, message: str = "") -> None:
        """Report ``done`` of ``total`` in ``phase``; a new phase closes the previous one."""
        if not self.enabled:
            return
        if phase != self.phase:
            self.close()
            self.phase, self.finished, self._logged = phase, False, None
            self._start = self._last_line = time.perf_counter()
            if self._is_interactive():
                self._open_bar(total, done)
        elif self.finished:
            return  # this phase already ended (its last report may come twice)
        self._state = (done, total, message)
        if self.bar is not None:
            self._draw(done, total, message)
        elif time.perf_counter() - self._last_line >= self.interval_s:
            self._write_line()
        if total and done >= total:
            self.close()  # so the phase's time is its own, not the phase's plus whatever follows

    def close(self) -> None:
        """End the current phase: close its bar, or write its last state when that was not written yet."""
        if self.phase is None or self.finished:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self._state is not None and self._state != self._logged:
            self._write_line()
        self.finished = True

    # ------------------------------------------------------------------ bars (terminal)
    def _open_bar(self, total, done) -> None:
        from tqdm import tqdm

        options = {"dynamic_ncols": True, **({"unit": self.unit} if self.unit else {}), **self.bar_options}
        self.bar = tqdm(total=total, initial=done, desc=self.phase, file=self.stream, **options)

    def _draw(self, done, total, message: str) -> None:
        self.bar.total = total
        self.bar.n = done
        if message:
            self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    # ------------------------------------------------------------------ log lines (no terminal)
    def _write_line(self) -> None:
        done, total, message = self._state
        now = time.perf_counter()
        elapsed = now - self._start
        count = f"{done:.2f}".rstrip("0").rstrip(".") if isinstance(done, float) else str(done)
        parts = [f"{self.phase}: {count}/{total:g}" + (f" {self.unit}s" if self.unit else "")]
        if total == 1 and done >= total and not message:  # a one-step phase: only its time
            print(f"{self.phase}: done in {format_seconds(elapsed)}", file=self.stream, flush=True)
            self._logged, self._last_line = self._state, now
            return
        if total:
            parts[0] += f" ({100 * min(done / total, 1.0):.0f}%)"
        if message:
            parts.append(message)
        if total and done >= total:
            parts.append(f"done in {format_seconds(elapsed)}")
        else:
            timing = f"{format_seconds(elapsed)} elapsed"
            if total and done > 0:
                timing += f", ~{format_seconds(elapsed / done * (total - done))} left"
            parts.append(timing)
        print(", ".join(parts), file=self.stream, flush=True)
        self._logged, self._last_line = self._state, now
