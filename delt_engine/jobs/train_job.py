"""A training run as a job: a run directory driven by ``training.train_model`` (``python -m delt_engine
train --run-dir DIR``, architecture.md "Jobs").

The loop writes nothing; this module gives its hooks a run directory: every record is appended to
metrics.jsonl (one flushed line each, so a reader sees the run live and a crash loses at most the
line being written), progress goes to progress.json, status.json follows the shared ``JobRun``
lifecycle, and summary.json is written however the run ends (done, cancelled or failed). With
``report_to``, each record also goes to TensorBoard / MLflow (jobs/trackers.py), closed however the
run ends.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import Cancelled, ConfigError, DataError
from ..fileio import append_jsonl, read_json, write_json
from ..progress import Progress, StopFn
from ..training.config import RunConfig
from ..training.loop import BatchFn, RunState, StepFn, TrainHooks, save_trained, train_model
from .trackers import RunTrackers, check_installed
from .protocol import (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, JobRun, ProgressFile, error_message, write_progress,
                       write_status)


def train(config: RunConfig, run_dir: str | Path, on_step: StepFn = None, should_stop: StopFn = None,
          on_batch: BatchFn = None) -> dict:
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
        raise ConfigError(f"model={config.model!r} is neither a preset ({', '.join(PRESETS)}) "
                          "nor a model directory")
    check_installed(config.report_to)  # a tracker's missing package: say so before writing anything
    write_json(run_dir / CONFIG_FILE, config.to_dict())
    return train_run(run_dir, on_step=on_step, should_stop=should_stop, on_batch=on_batch)


def train_run(run_dir: str | Path, on_step: StepFn = None, should_stop: StopFn = None,
              on_batch: BatchFn = None) -> dict:
    """Train the run described by ``run_dir/config.json``; the job entry point.

    Args:
        on_step, should_stop, on_batch: as in ``training.TrainHooks``; a true ``should_stop`` (or a
            Cancelled raised by a hook) ends the run "cancelled" with every metric it recorded.

    Returns:
        The summary (also written to summary.json). An exception marks the run "failed" (with the
        error, metrics kept, summary written) and is re-raised.
    """
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    state = RunState()
    trackers = RunTrackers(config, run_dir)  # report_to: each record also goes to TensorBoard / MLflow
    hooks = TrainHooks(on_record=trackers.wrap(lambda record: append_jsonl(run_dir / METRICS_FILE, record)),
                       on_progress=ProgressFile(run_dir), on_step=on_step, on_batch=on_batch,
                       should_stop=should_stop)
    with JobRun(run_dir) as job, trackers:  # trackers close first, however the run ends
        try:
            trackers.open()  # a missing package fails the run here, before any training
            outcome = _train(config, hooks, state, run_dir)
        except Cancelled:  # a hook or helper that honours a stop flag by raising (progress.check_stop)
            outcome = "cancelled"
        except KeyboardInterrupt:
            _write_summary(run_dir, state.summary("cancelled"))
            raise
        except BaseException as exc:
            _write_summary(run_dir, state.summary("failed", error=error_message(exc)))
            raise
        summary = _write_summary(run_dir, state.summary(outcome))
        trackers.finish(outcome)  # flushed before the status says the run is over
        job.finish(outcome)
    return summary


def _train(config: RunConfig, hooks: TrainHooks, state: RunState, run_dir: Path) -> str:
    result = train_model(config, hooks, state, cache_root=run_dir)
    if result.state == "done" and config.save_model:
        write_progress(run_dir, Progress("save", 0, 1, None, "saving the trained model"))
        state.info["model_dir"] = str(save_trained(result.model, result.tokenizer, run_dir / "model"))
    return result.state


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
