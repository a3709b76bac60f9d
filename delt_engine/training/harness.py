"""Bridge to lm-evaluation-harness (lm-eval, an optional dependency: the ``eval`` extra).

- ``export_task`` writes multiple-choice benchmark items as lm-eval tasks: one YAML per benchmark task
  (``multiple_choice``, ``doc_to_text: context``, ``doc_to_choice: choices``, ``doc_to_target: answer``,
  ``target_delimiter: " "``, metrics acc and acc_norm) with its items in a JSONL beside it, plus a group
  over them whose acc / acc_norm are the unweighted mean over tasks (as the built-in ``bench_acc``).
  ``lm_eval --include_path DIR --tasks NAME`` finds them; their requests are the ones
  ``evaluation.evaluate`` scores, so both give the same log-likelihood for every choice.
- ``run_lm_eval`` / ``eval_run`` evaluate a kept model (a local Hugging Face folder, e.g. ``<run>/model``)
  through lm-eval's Hugging Face backend, offline, and keep its results as ``<run>/lm_eval.json``.

lm-eval is imported only inside these functions; without it they raise a DeltError saying how to install it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError, DeltError
from ..fileio import atomic_write_text, read_json, write_json, write_jsonl

LM_EVAL_VERSION = "0.4.13"  # the version the parity tests pin (requirements-dev.txt)
# lm-eval's Hugging Face backend needs its "hf" extra (accelerate)
INSTALL_HINT = f"pip install 'delt-studio[eval]' (or pip install 'lm-eval[hf]=={LM_EVAL_VERSION}')"
MANIFEST = "delt_tasks.json"  # written by export_task: which files it wrote and the task names
RESULTS_FILE = "lm_eval.json"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def import_lm_eval():
    """The ``lm_eval`` module, or a DeltError naming the install command when it is missing."""
    try:
        import accelerate  # noqa: F401  (lm-eval's Hugging Face backend imports it)
        import lm_eval
        import lm_eval.tasks  # noqa: F401  (TaskManager)
    except ImportError as exc:
        raise DeltError(f"lm-evaluation-harness is not installed ({exc}); install it with {INSTALL_HINT}") from None
    return lm_eval


# ----------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportedTasks:
    """What ``export_task`` wrote: lm-eval task name per benchmark task, the group name and the files."""

    out_dir: Path
    tasks: dict[str, str]  # benchmark task -> lm-eval task name
    group: str | None
    files: tuple[Path, ...]


def task_name(task: str, prefix: str = "delt_") -> str:
    """The lm-eval name of benchmark task ``task``: ``prefix`` + the task with characters other than
    letters, digits, ``_`` and ``-`` replaced by ``_`` (the prefix keeps clear of lm-eval's own names,
    e.g. its ``arithmetic`` group)."""
    return prefix + re.sub(r"[^A-Za-z0-9_-]+", "_", task)


def export_task(
    items: Sequence, out_dir: str | Path, prefix: str = "delt_", group: str | None = "delt_benchmark"
) -> ExportedTasks:
    """Write multiple-choice items as lm-eval tasks (one per ``item.task``) into ``out_dir``.

    Args:
        items: ``data.benchmark.Item`` objects (e.g. from ``load_benchmark``), in the order to keep.
        out_dir: folder for the YAML and JSONL files (created; files of an earlier export there that
            this one does not rewrite are removed, other files are left alone). The YAMLs point at the
            JSONL files by absolute path (lm-eval reads ``data_files`` relative to the working
            directory), so export again after moving the folder.
        prefix: put before every task name.
        group: name of a group over all tasks (None: no group).

    Returns:
        ExportedTasks with the task names, group and the files written.

    Raises:
        DataError when there are no items or two benchmark tasks map to one lm-eval name;
        ConfigError for a prefix or group name lm-eval cannot take.
    """
    if not items:
        raise DataError("no benchmark items to export; give a benchmark JSONL with items")
    _check_name("prefix", prefix, allow_empty=True)
    if group is not None:
        _check_name("group", group)
    out_dir = Path(out_dir).resolve()
    by_task: dict[str, list] = {}
    for item in items:
        by_task.setdefault(item.task, []).append(item)
    names = {task: task_name(task, prefix) for task in by_task}
    _check_unique(names, group)
    files: list[Path] = []
    for task, task_items in by_task.items():
        data = out_dir / f"{names[task]}.jsonl"
        write_jsonl(
            data,
            (
                {"id": it.id, "context": it.context, "choices": list(it.choices), "answer": it.answer}
                for it in task_items
            ),
        )
        config = out_dir / f"{names[task]}.yaml"
        atomic_write_text(config, _task_yaml(names[task], data, task))
        files += [data, config]
    if group is not None:
        files.append(out_dir / f"{group}.yaml")
        atomic_write_text(files[-1], _group_yaml(group, list(names.values())))
    _remove_stale(out_dir, files)
    write_json(
        out_dir / MANIFEST,
        {
            "tasks": names,
            "group": group,
            "files": sorted(p.name for p in files),
            "n_items": {t: len(v) for t, v in by_task.items()},
        },
    )
    return ExportedTasks(out_dir, names, group, tuple(files))


def _check_name(what: str, value: str, allow_empty: bool = False) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]*" if allow_empty else r"[A-Za-z0-9_-]+", value):
        raise ConfigError(f"{what} {value!r} may use only letters, digits, '_' and '-'")


def _check_unique(names: dict[str, str], group: str | None) -> None:
    seen: dict[str, str] = {}
    for task, name in names.items():
        if name in seen:
            raise DataError(
                f"benchmark tasks {seen[name]!r} and {task!r} both become lm-eval task {name!r}; "
                "rename one of them in the benchmark file"
            )
        seen[name] = task
    if group is not None and group in seen:
        raise ConfigError(f"group name {group!r} is also a task name; choose another --group")


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value)


def _task_yaml(name: str, data: Path, task: str) -> str:
    metrics = "".join(
        f"  - metric: {m}\n    aggregation: mean\n    higher_is_better: true\n" for m in ("acc", "acc_norm")
    )
    return (
        f"# benchmark task {task!r}, written by delt_engine (benchmark export --format lm-eval)\n"
        f"task: {_q(name)}\n"
        "dataset_path: json\n"
        "dataset_kwargs:\n"
        "  data_files:\n"
        f"    test: {_q(str(data))}\n"
        "output_type: multiple_choice\n"
        "test_split: test\n"
        "doc_to_text: context\n"
        "doc_to_choice: choices\n"
        "doc_to_target: answer\n"
        f"target_delimiter: {_q(' ')}\n"
        "num_fewshot: 0\n"
        f"metric_list:\n{metrics}"
        "metadata:\n"
        "  version: 1.0\n"
    )


def _group_yaml(group: str, names: list[str]) -> str:
    tasks = "".join(f"  - {_q(n)}\n" for n in names)
    # unweighted over tasks, like the built-in bench_acc / bench_acc_norm
    metrics = "".join(
        f"  - metric: {m}\n    aggregation: mean\n    weight_by_size: false\n" for m in ("acc", "acc_norm")
    )
    return f"group: {_q(group)}\ntask:\n{tasks}aggregate_metric_list:\n{metrics}metadata:\n  version: 1.0\n"


def _remove_stale(out_dir: Path, written: list[Path]) -> None:
    """Files listed by an earlier export's manifest that this export did not write (a renamed task)."""
    previous = read_json(out_dir / MANIFEST, default=None)
    if not isinstance(previous, dict):
        return
    keep = {p.name for p in written}
    for name in previous.get("files") or []:
        path = out_dir / str(name)
        if name not in keep and path.parent == out_dir and path.is_file():
            path.unlink()


# ----------------------------------------------------------------------------------------- evaluate


@contextlib.contextmanager
def offline_hub():
    """No Hugging Face Hub access inside: the offline environment variables for modules imported from
    here on, and the offline flags of ``huggingface_hub`` / ``datasets`` if they are already imported
    (they read the variables once, at import). Everything is restored afterwards."""
    saved_env = {k: os.environ.get(k) for k in OFFLINE_ENV}
    flags = [
        (sys.modules.get(mod), attr)
        for mod, attr in (
            ("huggingface_hub.constants", "HF_HUB_OFFLINE"),
            ("datasets.config", "HF_HUB_OFFLINE"),
            ("datasets.config", "HF_DATASETS_OFFLINE"),
        )
    ]
    flags = [(m, a, getattr(m, a)) for m, a in flags if m is not None and hasattr(m, a)]
    try:
        os.environ.update({k: "1" for k in OFFLINE_ENV})
        for module, attr, _ in flags:
            setattr(module, attr, True)
        yield
    finally:
        for module, attr, old in flags:
            setattr(module, attr, old)
        for key, old in saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _task_manager(include_path: str | Path | None, tasks: Sequence[str]):
    """A TaskManager that knows ``tasks``: the include path alone when it has them all (indexing lm-eval's
    own thousands of tasks takes seconds), else with lm-eval's tasks too.

    Raises:
        ConfigError naming the unknown tasks and the ones the include path offers.
    """
    from lm_eval.tasks import TaskManager

    if include_path is not None:
        include_path = Path(include_path)
        if not include_path.is_dir():
            raise ConfigError(
                f"--include-path {include_path} is not a folder; export tasks there with "
                "`benchmark export --format lm-eval --out DIR`"
            )
        own = TaskManager(include_path=str(include_path), include_defaults=False)
        if all(t in own.all_tasks for t in tasks):
            return own
    manager = TaskManager(include_path=None if include_path is None else str(include_path))
    missing = [t for t in tasks if t not in manager.all_tasks]
    if missing:
        offered = f"; {include_path} offers {', '.join(own.all_tasks) or 'none'}" if include_path else ""
        raise ConfigError(
            f"lm-eval does not know task(s) {', '.join(missing)}{offered}. Export the benchmark "
            "with `benchmark export --format lm-eval --out DIR` and pass --include-path DIR"
        )
    return manager


def run_lm_eval(
    model_dir: str | Path,
    tasks: Sequence[str],
    include_path: str | Path | None = None,
    limit: int | None = None,
    device: str = "auto",
    batch_size: int = 16,
    log_samples: bool = False,
) -> dict:
    """Evaluate the local Hugging Face model in ``model_dir`` on lm-eval ``tasks``, offline.

    Args:
        model_dir: folder with config.json, safetensors weights and the tokenizer (``<run>/model``).
        tasks: lm-eval task or group names (e.g. from ``export_task``).
        include_path: folder of extra task YAMLs (an exported benchmark).
        limit: at most this many documents per task (the first ones).
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:N" or "mps".
        batch_size: requests per forward pass.
        log_samples: keep lm-eval's per-document records (``out["samples"]``: requests and log-likelihoods).

    Returns:
        lm-eval's ``simple_evaluate`` output as it returns it ("results", "groups", "configs", "versions",
        "n-samples", "config", ... and "samples" with ``log_samples``).

    Raises:
        DeltError when lm-eval is missing; ConfigError for unknown tasks or a bad include path;
        DataError when ``model_dir`` is not a model folder.
    """
    from ..models.device import resolve_device

    lm_eval = import_lm_eval()
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file() or not list(model_dir.glob("*.safetensors")):
        raise DataError(
            f"{model_dir} holds no kept model (config.json + safetensors); train the run with "
            "--save-model, or give a Hugging Face model folder"
        )
    tasks = [t.strip() for t in tasks if t.strip()]
    if not tasks:
        raise ConfigError("give at least one lm-eval task, e.g. --tasks delt_facts,delt_grammar")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit={limit} must be at least 1 (or left out for every document)")
    model_args = {
        "pretrained": str(model_dir.resolve()),
        "trust_remote_code": False,
        "device": str(resolve_device(device)),
        "batch_size": int(batch_size),
    }
    with offline_hub():
        manager = _task_manager(include_path, tasks)
        try:
            out = lm_eval.simple_evaluate(
                model="hf",
                model_args=model_args,
                tasks=tasks,
                limit=limit,
                task_manager=manager,
                log_samples=log_samples,
            )
        except ValueError as exc:  # e.g. a group and one of its tasks both asked for
            raise ConfigError(f"lm-eval refused the evaluation: {exc}") from exc
    if out is None:  # only on non-zero ranks of a distributed run
        raise DeltError("lm-eval returned no results (run it in a single process)")
    return out


def eval_run(
    run_dir: str | Path,
    tasks: Sequence[str],
    include_path: str | Path | None = None,
    limit: int | None = None,
    device: str = "auto",
    batch_size: int = 16,
) -> tuple[Path, dict]:
    """Evaluate a run's kept model with lm-eval and write ``<run_dir>/lm_eval.json`` (atomically).

    Returns:
        (path of lm_eval.json, its content): lm-eval's ``results`` exactly as it returns them, its
        ``groups``, ``versions``, ``n-samples`` and ``config``, and what was asked (tasks, include_path,
        limit, device, batch_size, model_dir, lm_eval_version, created_at).

    Raises:
        DataError when the run has no kept model; as ``run_lm_eval`` otherwise.
    """
    from ..models.device import resolve_device

    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    if not model_dir.is_dir():
        raise DataError(
            f"run {run_dir.name} kept no model ({model_dir} is missing); train it with --save-model "
            "(or save_model: true in the run config)"
        )
    device = str(resolve_device(device))
    started = time.perf_counter()
    out = run_lm_eval(model_dir, tasks, include_path, limit, device, batch_size)
    record = {
        "results": out["results"],
        "groups": out.get("groups", {}),
        "versions": out.get("versions", {}),
        "n-samples": out.get("n-samples", {}),
        "config": out.get("config", {}),
        "delt": {
            "run": run_dir.name,
            "model_dir": str(model_dir.resolve()),
            "tasks": list(tasks),
            "include_path": None if include_path is None else str(Path(include_path).resolve()),
            "limit": limit,
            "device": device,
            "batch_size": batch_size,
            "lm_eval_version": _installed_version(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "eval_s": round(time.perf_counter() - started, 3),
        },
    }
    path = run_dir / RESULTS_FILE
    # not write_json: that sorts keys, and the results are kept in lm-eval's own order
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return path, record


def _installed_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm_eval")
    except PackageNotFoundError:
        return None
