"""Scoring as a background job (``python -m delt_engine score --job-dir DIR``, architecture.md "Jobs").

``workspace.scorings.create_score_job`` writes ``<scores>/<id>/config.json`` and status "queued";
``run_score_job`` runs it with status/progress files, a cancel file or SIGTERM, and writes
``scores.parquet`` atomically only on success.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from ..progress import ProgressFn, StopFn, check_stop
from ..scoring.registry import JOB_DEFAULTS
from ..scoring.runner import ScoreResult, rank, run_scoring


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
    """Run the scoring job in ``job_dir`` (see ``protocol`` for the files).

    Writes status "running" (with pid), progress.json while it works, ``scores.parquet`` (id, score,
    components; atomic, only on success) and status "done" (n_scored, elapsed_s, direction). A cancel
    file or SIGTERM ends it with status "cancelled" and no scores file (Cancelled is re-raised); any
    other error ends it with status "failed" and the message, and is re-raised. Under torchrun only
    rank 0 writes anything.

    Args:
        job_dir: folder holding config.json (made by ``workspace.scorings.create_score_job`` or by hand).
        on_progress: optional extra progress callback (the CLI's progress bar).

    Returns:
        The ScoreResult on rank 0, None on other ranks.
    """
    from ..fileio import read_json
    from .protocol import CONFIG_FILE, JobRun, ProgressFile, StopFlag

    job_dir = Path(job_dir)
    config = read_json(job_dir / CONFIG_FILE)
    if not isinstance(config, dict):
        raise ConfigError(f"{job_dir} has no readable config.json; create the job with create_score_job")
    lead = rank() == 0
    with _restored_signal_handlers(), JobRun(job_dir, lead=lead) as job:
        report = ProgressFile(job_dir, also=on_progress) if lead else on_progress
        result = _run_job_config(config, report, StopFlag(job_dir))
        if result is None or not lead:
            job.finish("done")
            return None
        _save_scores(job_dir, result)
        job.finish("done", n_scored=result.scores.height, n_samples=result.frame.height,
                   elapsed_s=round(result.elapsed_s, 3), direction=result.direction, method=result.method)
        return result
