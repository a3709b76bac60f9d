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
    "load_corpus": "corpus", "read_records": "corpus", "write_records": "corpus", "LoadedCorpus": "corpus",
    "generate_demo": "demo", "write_demo": "demo", "ensure_demo": "demo",
    "train_tokenizer": "tokenize", "load_tokenizer": "tokenize", "encode": "tokenize", "Samples": "tokenize",
    "build_model": "models", "PRESETS": "models", "resolve_device": "device",
    # scoring
    "SCORERS": "scoring", "ScoreContext": "scoring", "score": "scoring",
    "score_frame": "scoring.runner", "run_scoring": "scoring.runner",
    "LQSConfig": "scoring.lqs",
    # selection and ordering
    "select": "selection", "select_indices": "selection", "summarize_selection": "selection",
    "order": "ordering", "order_indices": "ordering", "layout": "ordering",
    # training, evaluation, registry
    "RunConfig": "training_config", "train": "training", "train_run": "training",
    "evaluate": "benchmarks", "load_benchmark": "benchmarks",
    "Workspace": "workspace", "JobManager": "jobs",
}

__all__ = sorted(_EXPORTS) + ["DeltError", "ConfigError", "DataError", "JobError", "Cancelled"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'delt_engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
