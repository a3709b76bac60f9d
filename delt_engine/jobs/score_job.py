"""Scoring as a background job (``python -m delt_engine score --job-dir DIR``, architecture.md "Jobs").

``create_score_job`` writes ``<scores>/<id>/config.json`` and status "queued"; ``run_score_job``
runs it with status/progress files, a cancel file or SIGTERM, and writes ``scores.parquet``
atomically only on success.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError, DataError
from ..progress import ProgressFn, StopFn, check_stop
from ..scoring import get_scorer
from ..scoring.runner import ScoreResult, rank, run_scoring

JOB_DEFAULTS: dict[str, Any] = {"text_field": "text", "model": "cpu-demo", "tokenizer": None, "device": "auto",
                                "seed": 0, "max_length": 128, "batch_size": 16, "target": None, "options": {},
                                "cache_dir": None}


def create_score_job(workspace_scores_dir, config: dict) -> Path:
    """Make ``<workspace_scores_dir>/<id>/`` with ``config.json`` and status "queued".

    Args:
        workspace_scores_dir: the workspace ``scores/`` folder (created when missing).
        config: {"input": path, "method": name} plus any of JOB_DEFAULTS' keys; paths are made absolute.

    Returns:
        The job directory; run it with ``python -m delt_engine score --job-dir DIR``.
    """
    import hashlib
    import json

    from ..fileio import write_json
    from .protocol import write_status

    if not config.get("input") or not config.get("method"):
        raise ConfigError("a scoring job needs 'input' (a corpus file) and 'method' in its config")
    get_scorer(config["method"])
    config = {**JOB_DEFAULTS, **config}
    for key in ("input", "target", "cache_dir", "tokenizer"):
        if config.get(key):
            config[key] = str(Path(config[key]).expanduser().absolute())
    if not Path(config["input"]).exists():
        raise DataError(f"input file {config['input']} does not exist")
    salt = f"{json.dumps(config, sort_keys=True, default=str)}|{time.time_ns()}|{os.getpid()}"
    job_id = f"{config['method']}-{time.strftime('%Y%m%d-%H%M%S')}-{hashlib.sha1(salt.encode()).hexdigest()[:6]}"
    job_dir = Path(workspace_scores_dir) / job_id
    job_dir.mkdir(parents=True, exist_ok=False)
    write_json(job_dir / "config.json", config)
    write_status(job_dir, "queued")
    return job_dir


class _JobProgress:
    """on_progress for a job: writes progress.json (throttled; always at a phase change or end)."""

    def __init__(self, job_dir: Path, extra: ProgressFn, min_interval_s: float = 0.5):
        self.job_dir, self.extra, self.min_interval_s = job_dir, extra, min_interval_s
        self.phase, self.last = None, 0.0

    def __call__(self, progress) -> None:
        from .protocol import write_progress

        if self.extra is not None:
            self.extra(progress)
        now = time.monotonic()
        if progress.phase != self.phase or progress.done >= progress.total or now - self.last >= self.min_interval_s:
            self.phase, self.last = progress.phase, now
            write_progress(self.job_dir, progress)


def _run_job_config(config: dict, on_progress: ProgressFn, should_stop: StopFn) -> Optional[ScoreResult]:
    from ..data.corpus import load_corpus

    check_stop(should_stop)
    cfg = {**JOB_DEFAULTS, **config}
    frame = load_corpus(cfg["input"], text_field=cfg["text_field"]).frame
    target = None
    if cfg["target"]:
        target = load_corpus(cfg["target"], text_field=cfg.get("target_text_field", "text")).frame["text"].to_list()
    return run_scoring(frame, cfg["method"], model=cfg["model"], tokenizer=cfg["tokenizer"], device=cfg["device"],
                       seed=cfg["seed"], max_length=cfg["max_length"], batch_size=cfg["batch_size"],
                       target_texts=target, options=cfg["options"], cache_dir=cfg["cache_dir"],
                       on_progress=on_progress, should_stop=should_stop)


def _save_scores(job_dir: Path, result: ScoreResult) -> None:
    from ..data.corpus import write_records
    from ..scoring.runner import score_metadata

    # scorer, direction and settings travel inside the file (Parquet metadata), not only in status.json
    write_records(result.scores, job_dir / "scores.parquet", score_meta=score_metadata(result))


@contextlib.contextmanager
def _restored_signal_handlers():
    """StopFlag installs SIGTERM/SIGINT handlers; put the caller's back afterwards (tests, the app)."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):  # not the main thread, or a handler set outside Python
                pass


def run_score_job(job_dir, on_progress: ProgressFn = None) -> Optional[ScoreResult]:
    """Run the scoring job in ``job_dir`` (see ``jobstate`` for the protocol).

    Writes status "running" (with pid), progress.json while it works, ``scores.parquet`` (id, score,
    components; atomic, only on success) and status "done" (n_scored, elapsed_s, direction). A cancel
    file or SIGTERM ends it with status "cancelled" and no scores file (Cancelled is re-raised); any
    other error ends it with status "failed" and the message, and is re-raised. Under torchrun only
    rank 0 writes anything.

    Args:
        job_dir: folder holding config.json (made by ``create_score_job`` or by hand).
        on_progress: optional extra progress callback (the CLI's progress bar).

    Returns:
        The ScoreResult on rank 0, None on other ranks.
    """
    from ..errors import Cancelled, DeltError
    from ..fileio import read_json
    from .protocol import StopFlag, write_status

    job_dir = Path(job_dir)
    config = read_json(job_dir / "config.json")
    if not isinstance(config, dict):
        raise ConfigError(f"{job_dir} has no readable config.json; create the job with create_score_job")
    lead = rank() == 0
    with _restored_signal_handlers():
        try:
            if lead:
                write_status(job_dir, "running", pid=os.getpid(), error=None)
            report = _JobProgress(job_dir, on_progress) if lead else on_progress
            result = _run_job_config(config, report, StopFlag(job_dir))
            if result is None or not lead:
                return None
            _save_scores(job_dir, result)
            write_status(job_dir, "done", n_scored=result.scores.height, n_samples=result.frame.height,
                         elapsed_s=round(result.elapsed_s, 3), direction=result.direction, method=result.method)
            return result
        except Cancelled:
            if lead:
                write_status(job_dir, "cancelled", error=None)
            raise
        except BaseException as exc:
            if lead:
                message = str(exc) if isinstance(exc, DeltError) else f"{type(exc).__name__}: {exc}"
                write_status(job_dir, "failed", error=message)
            raise
