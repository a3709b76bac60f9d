"""A training run as a job: a run directory driven by ``training.train_model`` (``python -m delt_engine
train --run-dir DIR``, architecture.md "Jobs").

The loop writes nothing; this module gives its hooks a run directory: every record is appended to
metrics.jsonl (one flushed line each, so a reader sees the run live and a crash loses at most the
line being written), progress goes to progress.json, status.json follows the shared ``JobRun``
lifecycle, and summary.json is written however the run ends (done, cancelled or failed). With
``report_to``, each record also goes to TensorBoard / MLflow (jobs/trackers.py), closed however the
run ends.

A group job (``train --group-dir D1 --group-dir D2 ...``, ``train_group``) trains several run directories
in one process (``training.ensemble``) and writes each of them exactly so, through the same ``RunJob``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..errors import Cancelled, ConfigError, DataError
from ..fileio import append_jsonl, read_json, write_json
from ..progress import Progress, StopFn
from ..training.config import RunConfig
from ..training.loop import BatchFn, RunState, StepFn, TrainHooks, save_trained, train_model
from .protocol import (
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    JobRun,
    ProgressFile,
    error_message,
    write_progress,
    write_status,
)
from .trackers import RunTrackers, check_installed


def train(
    config: RunConfig, run_dir: str | Path, on_step: StepFn = None, should_stop: StopFn = None, on_batch: BatchFn = None
) -> dict:
    """Write ``config`` as ``run_dir/config.json`` and train the run (see ``train_run``).

    Raises:
        ConfigError when ``run_dir`` already holds metrics of an earlier run (choose a new run dir) or
        the model is unknown; DataError when the input file is missing; DeltError when a tracker of
        ``report_to`` is not installed. Nothing is written then.
    """
    run_dir = Path(run_dir)
    _refuse_earlier_metrics(run_dir, "choose a new --run-dir (or delete that folder)")
    if not Path(config.input).is_file():
        raise DataError(f"input file {config.input} does not exist; give the ordered data JSONL/Parquet")
    from ..models.presets import PRESETS

    if config.model not in PRESETS and not Path(config.model).is_dir():
        raise ConfigError(f"model={config.model!r} is neither a preset ({', '.join(PRESETS)}) nor a model directory")
    check_installed(config.report_to)  # a tracker's missing package: say so before writing anything
    write_json(run_dir / CONFIG_FILE, config.to_dict())
    return train_run(run_dir, on_step=on_step, should_stop=should_stop, on_batch=on_batch)


def train_run(
    run_dir: str | Path, on_step: StepFn = None, should_stop: StopFn = None, on_batch: BatchFn = None
) -> dict:
    """Train the run described by ``run_dir/config.json``; the job entry point.

    Args:
        on_step, should_stop, on_batch: as in ``training.TrainHooks``; a true ``should_stop`` (or a
            Cancelled raised by a hook) ends the run "cancelled" with every metric it recorded.

    Returns:
        The summary (also written to summary.json). An exception marks the run "failed" (with the
        error, metrics kept, summary written) and is re-raised.
    """
    run = RunJob(run_dir, on_step=on_step, should_stop=should_stop, on_batch=on_batch)
    with JobRun(run.run_dir) as job, run.trackers:  # trackers close first, however the run ends
        try:
            run.trackers.open()  # a missing package fails the run here, before any training
            result = train_model(run.config, run.hooks, run.state, cache_root=run.run_dir)
            outcome = run.keep(result)
        except Cancelled:  # a hook or helper that honours a stop flag by raising (progress.check_stop)
            outcome = "cancelled"
        except KeyboardInterrupt:
            run.write_summary("cancelled")
            raise
        except BaseException as exc:
            run.write_summary("failed", error=error_message(exc))
            raise
        summary = run.write_summary(outcome)
        run.trackers.finish(outcome)  # flushed before the status says the run is over
        job.finish(outcome)
    return summary


class RunJob:
    """One run directory as a training job: its config, the hooks that write its metrics.jsonl and
    progress.json (and, with ``report_to``, its trackers), the state the loop fills in, and how it ends
    (kept model, summary.json). Shared by the solo job (``train_run``) and the group job (``train_group``);
    the caller enters ``trackers`` (a context manager) and calls ``trackers.open()`` / ``finish()``."""

    def __init__(
        self, run_dir: str | Path, on_step: StepFn = None, should_stop: StopFn = None, on_batch: BatchFn = None
    ):
        self.run_dir = Path(run_dir)
        self.config = _read_config(self.run_dir)
        self.state = RunState()
        self.trackers = RunTrackers(self.config, self.run_dir)  # report_to: TensorBoard / MLflow too
        self.hooks = TrainHooks(
            on_record=self.trackers.wrap(lambda r: append_jsonl(self.run_dir / METRICS_FILE, r)),
            on_progress=ProgressFile(self.run_dir),
            on_step=on_step,
            on_batch=on_batch,
            should_stop=should_stop,
        )

    def keep(self, result) -> str:
        """The run's outcome; a completed run with ``save_model`` saves its model first."""
        if result.state == "done" and self.config.save_model:
            write_progress(self.run_dir, Progress("save", 0, 1, None, "saving the trained model"))
            self.state.info["model_dir"] = str(save_trained(result.model, result.tokenizer, self.run_dir / "model"))
        return result.state

    def write_summary(self, outcome: str, error: str | None = None) -> dict:
        return _write_summary(self.run_dir, self.state.summary(outcome, error=error))


def train_group(
    run_dirs: list[str | Path], should_stop: StopFn = None, on_step=None, mode: str = "auto"
) -> dict[Path, dict]:
    """Train several run directories together in this process (``training.ensemble.train_together``:
    one stacked model where they share a model configuration on CUDA, else each run's own step in turn),
    each written exactly as ``train_run`` writes a run: its own config.json, metrics.jsonl, progress.json,
    status.json and summary.json.

    Args:
        run_dirs: run directories with a config.json each (a bad one ends "failed" alone).
        should_stop: stops every member (e.g. SIGTERM to the group process); each member also stops
            alone when its own ``<run_dir>/cancel`` file appears.
        on_step: ``on_step(run_dir, info)`` after every step of every member (info as ``TrainHooks.on_step``).
        mode: "auto", "stacked" or "interleaved" (``training.ensemble.group_mode``).

    Returns:
        {run_dir: summary}; a member that could not start (no config.json, a bad one, metrics of an
        earlier run) has {"state": "not started", "error"}. An error of the stacked step itself marks every
        member still running "failed" and is re-raised.
    """
    from ..training.ensemble import Member, train_together
    from .protocol import StopFlag

    runs, summaries = [], {}
    for run_dir in dict.fromkeys(Path(d) for d in run_dirs):
        stop = _either(StopFlag(run_dir, install_signals=False), should_stop)
        step = None if on_step is None else (lambda info, d=run_dir: on_step(d, info))
        try:
            runs.append(RunJob(run_dir, on_step=step, should_stop=stop))
        except (ConfigError, DataError) as exc:  # a bad config.json is marked failed; an earlier run is left alone
            summaries[run_dir] = {"state": "not started", "error": str(exc)}
    with contextlib.ExitStack() as stack:
        jobs = [stack.enter_context(JobRun(run.run_dir)) for run in runs]
        for run in runs:
            stack.enter_context(run.trackers)  # closed before the statuses, however the group ends
        try:
            for run in runs:
                run.trackers.open()
            outcomes = train_together([Member(r.config, r.hooks, r.state, r.run_dir) for r in runs], mode)
        except KeyboardInterrupt:
            for run in runs:
                run.write_summary("cancelled")
            raise
        except BaseException as exc:
            for run in runs:
                run.write_summary("failed", error=error_message(exc))
            raise
        for run, job, outcome in zip(runs, jobs, outcomes):
            summaries[run.run_dir] = _finish_member(run, job, outcome)
    return summaries


def _finish_member(run: RunJob, job: JobRun, outcome) -> dict:
    """Keep a group member's model, write its summary and its final status."""
    error = outcome.error
    if isinstance(error, Cancelled):  # a hook that honours a stop flag by raising
        summary = run.write_summary("cancelled")
        run.trackers.finish("cancelled")
        job.finish("cancelled")
        return summary
    if error is None:
        try:
            state = run.keep(outcome)
        except Exception as exc:  # e.g. the disk is full: this member failed
            error = exc
    if error is not None:
        message = error_message(error)
        summary = run.write_summary("failed", error=message)
        run.trackers.finish("failed")
        job.finish("failed", error=message)
        return summary
    summary = run.write_summary(state)
    run.trackers.finish(state)
    job.finish(state)
    return summary


def _either(first: StopFn, second: StopFn) -> StopFn:
    if second is None:
        return first
    return lambda: first() or second()


def _read_config(run_dir: Path) -> RunConfig:
    raw = read_json(run_dir / CONFIG_FILE)
    if raw is None:
        raise ConfigError(f"run dir {run_dir} has no config.json; start a run with --input (or write config.json)")
    _refuse_earlier_metrics(run_dir, "runs cannot resume, start a new run dir")  # left as it is
    try:
        return RunConfig.from_dict(raw)
    except ConfigError as exc:  # a queued job with a bad config.json ends failed, not stuck in "queued"
        write_status(run_dir, "failed", error=f"config.json: {exc}")
        raise


def _refuse_earlier_metrics(run_dir: Path, fix: str) -> None:
    metrics = run_dir / METRICS_FILE
    if metrics.exists() and metrics.stat().st_size > 0:
        raise ConfigError(f"run dir {run_dir} already has metrics from an earlier run; {fix}")


def _write_summary(run_dir: Path, summary: dict) -> dict:
    write_json(run_dir / SUMMARY_FILE, summary)
    return summary
