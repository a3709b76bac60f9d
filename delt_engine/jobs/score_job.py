"""Scoring as a background job (``python -m delt_engine score --job-dir DIR``, architecture.md "Jobs").

``workspace.scorings.create_score_job`` writes ``<scores>/<id>/config.json`` and status "queued";
``run_score_job`` runs it with status/progress files, a cancel file or SIGTERM, and writes
``scores.parquet`` atomically only on success.

A job whose config names several methods (``"methods": ["lqs", "pds"]``) runs them one after another
in this process (LQS and PDS share one exact computation: ``scoring.lqs`` caches it per process), keeps
the first method's scores in its own folder and writes each other method's into a new finished scoring
folder beside it (config with that ``method`` and ``"made_by": <job id>``), so each folder stays a
one-method scoring as ``workspace.scorings`` reads it.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

from ..errors import ConfigError
from ..progress import ProgressFn, StopFn, check_stop
from ..scoring.registry import JOB_DEFAULTS
from ..scoring.runner import ScoreResult, rank, run_scoring


def job_methods(config: dict) -> list[str]:
    """The methods a job config runs, in order (``methods`` when given, else ``[method]``)."""
    return list(dict.fromkeys(config.get("methods") or [config.get("method")]))


def _run_job_config(
    config: dict, on_progress: ProgressFn, should_stop: StopFn, method: str | None = None
) -> ScoreResult | None:
    from ..data.corpus import load_corpus

    check_stop(should_stop)
    cfg = {**JOB_DEFAULTS, **config, **({"method": method} if method else {})}
    frame = load_corpus(cfg["input"], text_field=cfg["text_field"]).frame
    target = None
    if cfg["target"]:
        target = load_corpus(cfg["target"], text_field=cfg.get("target_text_field", "text")).frame["text"].to_list()
    return run_scoring(
        frame,
        cfg["method"],
        model=cfg["model"],
        tokenizer=cfg["tokenizer"],
        device=cfg["device"],
        seed=cfg["seed"],
        max_length=cfg["max_length"],
        batch_size=cfg["batch_size"],
        target_texts=target,
        options=cfg["options"],
        cache_dir=cfg["cache_dir"],
        on_progress=on_progress,
        should_stop=should_stop,
    )


def _save_scores(job_dir: Path, result: ScoreResult) -> None:
    from ..data.corpus import write_records
    from ..scoring.runner import score_metadata

    # scorer, direction and settings travel inside the file (Parquet metadata), not only in status.json
    write_records(result.scores, job_dir / "scores.parquet", score_meta=score_metadata(result))


def _save_other_method(job_dir: Path, config: dict, result: ScoreResult) -> Path:
    """Write ``result`` (a method after the job's first) as a finished scoring folder beside ``job_dir``."""
    from ..fileio import new_dir, write_json
    from .protocol import CONFIG_FILE, write_status

    out = new_dir(job_dir.parent, result.method)
    own = {k: v for k, v in config.items() if k != "methods"}
    write_json(out / CONFIG_FILE, {**own, "method": result.method, "made_by": job_dir.name})
    _save_scores(out, result)
    write_status(
        out,
        "done",
        n_scored=result.scores.height,
        n_samples=result.frame.height,
        elapsed_s=round(result.elapsed_s, 3),
        direction=result.direction,
        method=result.method,
        made_by=job_dir.name,
    )
    return out


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


def run_score_job(job_dir, on_progress: ProgressFn = None) -> ScoreResult | None:
    """Run the scoring job in ``job_dir`` (see ``protocol`` for the files).

    Writes status "running" (with pid), progress.json while it works, ``scores.parquet`` (id, score,
    components; atomic, only on success) and status "done" (n_scored, elapsed_s, direction). A cancel
    file or SIGTERM ends it with status "cancelled" and no scores file (Cancelled is re-raised); any
    other error ends it with status "failed" and the message, and is re-raised. Under torchrun only
    rank 0 writes anything. With several ``methods`` each one after the first gets its own finished
    scoring folder (status "done" lists them under ``also``: method -> folder name).

    Args:
        job_dir: folder holding config.json (made by ``workspace.scorings.create_score_job`` or by hand).
        on_progress: optional extra progress callback (the CLI's progress bar).

    Returns:
        The ScoreResult (of the first method) on rank 0, None on other ranks.
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
        stop = StopFlag(job_dir)
        results = [_run_job_config(config, report, stop, method=m) for m in job_methods(config)]
        result = results[0]
        if result is None or not lead:
            job.finish("done")
            return None
        also = {r.method: _save_other_method(job_dir, config, r).name for r in results[1:]}
        _save_scores(job_dir, result)
        job.finish(
            "done",
            n_scored=result.scores.height,
            n_samples=result.frame.height,
            elapsed_s=round(result.elapsed_s, 3),
            direction=result.direction,
            method=result.method,
            **({"also": also} if also else {}),
        )
        return result
