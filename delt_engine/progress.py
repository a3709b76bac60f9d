"""Progress reporting and cancellation for long engine loops (no printing, no UI).

Engine loops take ``on_progress: Callable[[Progress], None] | None`` and ``should_stop:
Callable[[], bool] | None``; they call ``check_stop(should_stop)`` between chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    phase: str  # e.g. "warm-up", "trajectory", "co-state", "contributions", "train"
    done: int
    total: int
    eta_s: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fraction"] = self.fraction
        return d


ProgressFn = Callable[[Progress], None] | None
StopFn = Callable[[], bool] | None


def check_stop(should_stop: StopFn) -> None:
    """Raise Cancelled when the stop flag is set."""
    if should_stop is not None and should_stop():
        raise Cancelled("stopped on request; partial results were discarded")


class PhaseTimer:
    """Reports progress of one phase with an ETA from the elapsed time so far."""

    def __init__(self, phase: str, total: int, on_progress: ProgressFn, min_interval_s: float = 0.2):
        self.phase, self.total, self.on_progress = phase, max(int(total), 0), on_progress
        self.start = time.perf_counter()
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self.update(0, force=True)

    def update(self, done: int, message: str = "", force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.perf_counter()
        if not force and done < self.total and now - self._last < self.min_interval_s:
            return
        self._last = now
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if done > 0 else None
        self.on_progress(Progress(self.phase, int(done), self.total, eta, message))
