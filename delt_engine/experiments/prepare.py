"""The data side of preparing a comparison (``comparison_spec.prepare_comparison``): load the corpus
and hold out a validation split, score it (or reuse the workspace's cached scores), drop duplicates,
apply the selection, and train the one tokenizer every arm shares.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from ..errors import ConfigError, DataError
from ..fileio import read_json, write_json
from ..jobs.protocol import now_iso
from ..progress import ProgressFn, StopFn
from ..workspace.layout import Workspace

if TYPE_CHECKING:
    from .spec import ComparisonSpec

HOLDOUT_SEED = 0  # the validation split does not depend on the run seeds: every arm sees the same one


def holdout_ids(frame: pl.DataFrame, fraction: float, seed: int = HOLDOUT_SEED) -> list[str]:
    """Seeded ``fraction`` of the clean documents' ids (all documents when there is no ``is_noise``)."""
    pool = frame.filter(~pl.col("is_noise").fill_null(False)) if "is_noise" in frame.columns else frame
    n = int(round(fraction * pool.height))
    if fraction > 0 and n == 0 and pool.height > 1:
        n = 1
    if n == 0:
        return []
    rng = np.random.default_rng(seed)
    pick = rng.choice(pool.height, size=n, replace=False)
    return pool["id"].cast(pl.Utf8).gather(np.sort(pick)).to_list()


def scores_key(corpus_hash: str, scorer: dict, settings: dict) -> str:
    """Cache key of a scoring: corpus content, scorer and the settings that change the scores."""
    blob = json.dumps({"corpus": corpus_hash, "scorer": scorer, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_cached_scores(scores_dir: Path) -> pl.DataFrame | None:
    """Scores of a finished cached scoring (status done and scores.parquet present), else None."""
    status = read_json(scores_dir / "status.json", default={}) or {}
    path = scores_dir / "scores.parquet"
    if status.get("state") != "done" or not path.exists():
        return None
    try:
        return pl.read_parquet(path)
    except Exception:  # a damaged cache entry is recomputed, never trusted
        return None


def build_inputs(spec: ComparisonSpec, workspace: Workspace, data_dir: Path) -> dict:
    """Load the corpus, resolve target/benchmark (demo defaults) and make the validation split.

    Returns:
        {"train": frame to score, "corpus_source", "corpus_hash", "score_hash" (what scoring sees),
         "validation", "validation_note", "target", "benchmark"} (paths absolute or None).
    """
    from ..data.corpus import load_corpus, read_records, write_records

    corpus, target, benchmark = spec.corpus, spec.target, spec.benchmark
    if corpus == "demo":
        from ..demo.generate import ensure_demo

        folder = Path(ensure_demo(workspace.root))
        corpus = str(folder / "corpus.jsonl")
        target = target or _existing(folder / "target.jsonl")
        benchmark = benchmark or _existing(folder / "benchmark.jsonl")
    loaded = load_corpus(corpus, text_field=spec.text_field)
    frame, corpus_hash = loaded.frame.with_columns(pl.col("id").cast(pl.Utf8)), loaded.report.content_hash
    _check_group_column(getattr(spec, "group_by", None), frame, f"corpus {corpus}")
    if spec.validation and getattr(spec, "group_by", None):
        _check_group_column(spec.group_by, read_records(spec.validation), f"validation file {spec.validation}")
    validation, note, held = spec.validation, f"validation file {spec.validation}", []
    if validation is None and spec.validation_fraction > 0:
        held = holdout_ids(frame, spec.validation_fraction)
        if held:
            validation = str((data_dir / "validation.jsonl").resolve())
            write_records(frame.filter(pl.col("id").is_in(held)), validation)
            frame = frame.filter(~pl.col("id").is_in(held))
            note = (f"held out {len(held)} clean documents ({spec.validation_fraction:.0%}, seed {HOLDOUT_SEED}) "
                    "of the corpus as validation; they are not scored, selected or trained on")
    if validation is None:
        note = "no validation set (val_loss is not reported)"
    if frame.height == 0:
        raise DataError(f"corpus {corpus} has no documents left to train on after the validation split")
    score_hash = hashlib.sha256(f"{corpus_hash}|holdout={sorted(held)}".encode()).hexdigest()[:16]
    return {"train": frame, "corpus_source": str(corpus), "corpus_hash": corpus_hash, "score_hash": score_hash,
            "validation": validation, "validation_note": note, "target": target, "benchmark": benchmark}


def _check_group_column(group_by: str | None, frame: pl.DataFrame, what: str) -> None:
    """ConfigError unless ``frame`` has the ``group_by`` column (the runs evaluate by it)."""
    if group_by and group_by not in frame.columns:
        columns = ", ".join(c for c in frame.columns if c not in ("id", "text")) or "none"
        raise ConfigError(f"group_by={group_by!r}: the {what} has no such column (metadata columns: {columns}); "
                          "pick one of them, or null for no evaluation by group")


def _existing(path: Path) -> str | None:
    return str(path.resolve()) if path.exists() else None


def score_corpus(spec: ComparisonSpec, inputs: dict, workspace: Workspace, on_progress: ProgressFn = None,
                 should_stop: StopFn = None) -> tuple[pl.DataFrame, dict]:
    """Scores joined to the training frame: from a score column, the workspace cache, or computed now.

    Cached scorings live in ``scores/<method>-<key>/`` (key: corpus content, holdout, scorer, settings).
    """
    frame, scorer = inputs["train"], spec.scorer
    if "score_field" in scorer:
        name = scorer["score_field"]
        if name not in frame.columns or not frame.schema[name].is_numeric():
            raise DataError(f"the corpus has no numeric column {name!r} to use as scores "
                            f"(columns: {', '.join(frame.columns)}); give a scorer method instead")
        info = {"method": None, "score_field": name, "direction": scorer.get("direction", "higher_better")}
        return _drop_unscored(frame, name, info)
    from ..scoring import get_scorer
    from ..scoring.runner import join_scores, run_scoring

    method, options = scorer["method"], dict(scorer.get("options", {}))
    settings = {"model": scorer.get("model", spec.train.get("model", "cpu-demo")),
                "device": scorer.get("device", spec.train.get("device", "auto")), "seed": scorer.get("seed", 0),
                "max_length": spec.train.get("max_length", 128), "batch_size": spec.train.get("batch_size", 16)}
    target_texts = None
    if method in ("lqs", "pds"):
        if not inputs["target"]:
            raise ConfigError(f"scorer {method!r} needs a target set; give 'target' (a clean JSONL) in the spec")
        from ..data.corpus import load_corpus

        target_texts = load_corpus(inputs["target"]).frame["text"].to_list()
        settings["target_hash"] = hashlib.sha256("\x00".join(target_texts).encode()).hexdigest()[:16]
    key = scores_key(inputs["score_hash"], {"method": method, "options": options}, settings)
    scores_dir = workspace.scores / f"{method}-{key}"
    scores, cached, elapsed = read_cached_scores(scores_dir), True, 0.0
    if scores is None:
        cached = False
        settings_call = {k: v for k, v in settings.items() if k != "target_hash"}
        result = run_scoring(frame, method, **settings_call, target_texts=target_texts, options=options,
                             cache_dir=workspace.cache, on_progress=on_progress, should_stop=should_stop)
        scores, elapsed = result.scores, result.elapsed_s
        scores_dir.mkdir(parents=True, exist_ok=True)
        scores.write_parquet(scores_dir / "scores.parquet")
        # "input" names the corpus, so the app lists this scoring with that dataset's scores (it covers
        # the corpus minus the validation hold-out)
        write_json(scores_dir / "config.json", {**result.config, "input": str(Path(inputs["corpus_source"]).resolve()),
                                                "corpus_hash": inputs["corpus_hash"], "score_hash": inputs["score_hash"]})
        write_json(scores_dir / "status.json", {"state": "done", "direction": result.direction, "created_at": now_iso(),
                                                "elapsed_s": round(elapsed, 3), "n_scored": scores.height})
    info = {"method": method, "options": options, "settings": settings, "score_field": "score",
            "direction": get_scorer(method).direction, "scores_id": scores_dir.name, "cached": cached,
            "elapsed_s": round(elapsed, 3)}
    return _drop_unscored(join_scores(frame, scores), "score", info)


def _drop_unscored(frame: pl.DataFrame, field_name: str, info: dict) -> tuple[pl.DataFrame, dict]:
    kept = frame.filter(pl.col(field_name).is_not_null() & pl.col(field_name).cast(pl.Float64).is_finite())
    if kept.height == 0:
        raise DataError(f"no document has a finite {field_name!r}; check the scorer output")
    return kept, {**info, "n_unscored": frame.height - kept.height}


def dedup_corpus(spec: ComparisonSpec, scored: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The spec's duplicate removal (before selection; first occurrences kept in corpus order)."""
    if spec.dedup is None:
        return scored, 0
    from ..data.dedup import drop_duplicates

    options = {k: v for k, v in spec.dedup.items() if k != "mode"}
    kept, result = drop_duplicates(scored, spec.dedup["mode"], text_field="text", **options)
    return kept, result.n_dropped


def select_corpus(spec: ComparisonSpec, scored: pl.DataFrame, score_info: dict) -> pl.DataFrame:
    """Apply the spec's selection (survivors in corpus order); the direction comes from the scorer."""
    if spec.selection is None:
        return scored
    from ..organize.selection import select

    sel = spec.selection
    higher = sel.get("higher_is_better", score_info["direction"] == "higher_better")
    kept = select(scored, sel["method"], k=sel.get("k"), ratio=sel.get("ratio"), threshold=sel.get("threshold"),
                  score_field=score_info["score_field"], higher_is_better=higher)
    if kept.height == 0:
        raise DataError(f"selection {sel} kept no documents; raise k / ratio or lower the threshold")
    return kept


def shared_tokenizer(selected: pl.DataFrame, spec: ComparisonSpec, workspace: Workspace) -> Path:
    """One tokenizer for every arm: the model directory's own, else BPE trained once on the selection."""
    from ..data.tokenizer import DEFAULT_VOCAB_SIZE, train_tokenizer

    model = Path(str(spec.train.get("model", "cpu-demo")))
    if model.is_dir() and (model / "tokenizer.json").exists():
        return model.resolve()
    tok = train_tokenizer(selected["text"].to_list(), vocab_size=int(spec.train.get("vocab_size", DEFAULT_VOCAB_SIZE)),
                          cache_root=workspace.cache)
    path = Path(tok.name_or_path)
    if not (path / "tokenizer.json").exists():
        raise DataError(f"the shared tokenizer was not saved under {workspace.cache}; check that it is writable")
    return path.resolve()
