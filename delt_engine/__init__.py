"""DELT Studio engine: score, select, order, train and compare (no Streamlit).

The public API is re-exported here and imported lazily, so ``import delt_engine`` stays fast and
light (torch and transformers load only when a function that needs them is first used).

    from delt_engine import generate_demo, load_corpus, score_frame, select, order, RunConfig, train
"""

from __future__ import annotations

import importlib

from .errors import Cancelled, ConfigError, DataError, DeltError, JobError

__version__ = "0.1.0"

_EXPORTS = {
    # data
    "load_corpus": "data.corpus",
    "read_records": "data.corpus",
    "write_records": "data.corpus",
    "LoadedCorpus": "data.corpus",
    "generate_demo": "demo.generate",
    "write_demo": "demo.generate",
    "ensure_demo": "demo.generate",
    "train_tokenizer": "data.tokenizer",
    "load_tokenizer": "data.tokenizer",
    "encode": "data.tokenizer",
    "Samples": "data.tokenizer",
    "build_model": "models.presets",
    "PRESETS": "models.presets",
    "resolve_device": "models.device",
    # scoring
    "SCORERS": "scoring",
    "ScoreContext": "scoring",
    "score": "scoring",
    "score_frame": "scoring.runner",
    "run_scoring": "scoring.runner",
    "LQSConfig": "scoring.lqs_config",
    # selection and ordering
    "select": "organize.selection",
    "select_indices": "organize.selection",
    "summarize_selection": "organize.selection",
    "order": "organize.ordering",
    "order_indices": "organize.ordering",
    "layout": "organize.ordering",
    # training, evaluation, registry
    "RunConfig": "training.config",
    "train": "jobs.train_job",
    "train_run": "jobs.train_job",
    "train_model": "training.loop",
    "evaluate": "training.evaluation",
    "load_benchmark": "training.evaluation",
    "Workspace": "workspace.layout",
    "JobManager": "jobs.manager",
}

__all__ = sorted(_EXPORTS) + ["DeltError", "ConfigError", "DataError", "JobError", "Cancelled"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'delt_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
