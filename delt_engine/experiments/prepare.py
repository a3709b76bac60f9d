"""Preparing a comparison: everything its runs need, written once, so runs differ only by their recipe.

``prepare_comparison(spec, workspace)``:
1. loads the corpus and holds out a duplicate-aware validation split (``holdout``), unless the spec
   gives a validation file;
2. splits the target set into the part LQS/PDS aim at and the part ``target_loss`` is measured on
   (or takes a separate ``eval_target`` file);
3. scores the training documents once (or reuses the workspace's cached scoring of them);
4. trains one tokenizer on all the training documents, before any selection, so every arm's losses
   are in the same units;
5. per arm: drops duplicates, selects, orders (per seed for shuffle), and writes one run directory
   per arm x seed; then checks that no held-out text has a copy in any arm's training data;
6. writes the manifest ``comparisons/<id>/comparison.json``.
Launching the runs is the job manager's work (``compare``; ``compare --prepare-only`` stops here).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from ..errors import ConfigError, DataError
from ..fileio import read_json, write_json
from ..jobs.protocol import CONFIG_FILE, STATUS_FILE, now_iso
from ..progress import Progress, ProgressFn, StopFn, check_stop
from ..workspace.layout import Workspace
from . import holdout
from .spec import Arm, ComparisonSpec, parse_spec, slug

MANIFEST = "comparison.json"
PHASES = ("loading the corpus", "scoring", "training the shared tokenizer", "preparing the arms", "runs ready")


@dataclass
class Inputs:
    """The comparison's data before scoring (paths absolute, or None when not given)."""

    train: pl.DataFrame  # every document that may be trained on (the validation hold-out removed)
    corpus_source: str
    corpus_hash: str
    score_hash: str  # what scoring sees: the corpus and its hold-out
    validation: str | None
    validation_note: str
    n_copies_removed: int
    score_target: str | None
    eval_target: str | None
    benchmark: str | None


@dataclass
class ScoreInfo:
    """Where the scores came from (recorded in the manifest and every run's provenance)."""

    method: str | None
    score_field: str
    direction: str
    options: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    scores_id: str | None = None
    cached: bool = False
    elapsed_s: float = 0.0
    n_unscored: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Comparison:
    """A prepared comparison: its id, folder, manifest and run directories (arm x seed)."""

    id: str
    dir: Path
    manifest: dict
    run_dirs: list[Path]


def prepare_comparison(
    spec: ComparisonSpec | dict | str | Path,
    workspace: Workspace,
    on_progress: ProgressFn = None,
    should_stop: StopFn = None,
) -> Comparison:
    """Prepare every run of a comparison (see the module docstring).

    Args:
        spec: a ComparisonSpec, or a dict / JSON path for ``parse_spec``.
        workspace: where scores, the tokenizer cache, runs and the manifest go.
        on_progress: receives one Progress per preparation phase (and the scorer's own progress).
        should_stop: stop flag; raises Cancelled between phases.
    Returns:
        The Comparison; its runs are ready to submit (``JobManager.submit(run_dir, "train")``).
    """
    from ..models.presets import check_model_spec

    spec = spec if isinstance(spec, ComparisonSpec) else parse_spec(spec)
    for model in {str(spec.train.get("model", "cpu-demo")), *([spec.scorer.model] if spec.scorer.model else [])}:
        check_model_spec(model)  # before any work: every run would fail on it
    cmp_dir = workspace.new_comparison_dir(slug(spec.name) or "cmp")
    try:
        manifest = _prepare(spec, workspace, cmp_dir, on_progress, should_stop)
    except BaseException:
        shutil.rmtree(cmp_dir, ignore_errors=True)  # no half-made comparison; cached scores stay
        raise
    return Comparison(cmp_dir.name, cmp_dir, manifest, [workspace.root / "runs" / r["id"] for r in manifest["runs"]])


def load_comparison(workspace: Workspace, comparison_id: str) -> Comparison:
    """A prepared comparison read back from its manifest."""
    manifest = workspace.load_comparison(comparison_id)
    cmp_dir = workspace.comparison_dir(comparison_id)
    return Comparison(comparison_id, cmp_dir, manifest, [workspace.root / "runs" / r["id"] for r in manifest["runs"]])


def _prepare(
    spec: ComparisonSpec, workspace: Workspace, cmp_dir: Path, on_progress: ProgressFn, should_stop: StopFn
) -> dict:
    def report(phase: int) -> None:
        if on_progress is not None:
            on_progress(Progress("prepare", phase, len(PHASES), None, PHASES[phase]))

    data_dir = cmp_dir / "data"
    report(0)
    inputs = build_inputs(spec, workspace, data_dir)
    check_stop(should_stop)
    report(1)
    scored, score_info = score_corpus(spec, inputs, workspace, on_progress, should_stop)
    check_stop(should_stop)
    report(2)
    tokenizer_dir = shared_tokenizer(inputs.train, spec, workspace)
    check_stop(should_stop)
    report(3)
    by_data: dict = {}  # arms with the same dedup and selection share their documents
    for arm in spec.arms:
        by_data.setdefault(arm.data_key, _arm_data(arm, scored, score_info))
    arm_data = {arm.label: by_data[arm.data_key] for arm in spec.arms}
    checks = _overlap_checks(inputs, arm_data)
    runs = _write_runs(spec, workspace, cmp_dir.name, data_dir, arm_data, tokenizer_dir, inputs, score_info)
    manifest = {
        "id": cmp_dir.name,
        "name": spec.name,
        "spec": spec.to_dict(),
        "baseline": spec.baseline_label,
        "arms": spec.labels,
        "seeds": list(spec.seeds),
        "runs": runs,
        "corpus_hash": inputs.corpus_hash,
        "scores": score_info.to_dict(),
        "tokenizer": str(tokenizer_dir),
        "n_train_docs": inputs.train.height,
        "arm_data": {label: d["entry"] for label, d in arm_data.items()},
        "validation": inputs.validation,
        "validation_note": inputs.validation_note,
        "n_copies_removed": inputs.n_copies_removed,
        "score_target": inputs.score_target,
        "eval_target": inputs.eval_target,
        "benchmark": inputs.benchmark,
        "overlap": checks,
    }
    write_json(cmp_dir / MANIFEST, manifest)
    report(4)
    return manifest


# ----------------------------------------------------------------------------- inputs


def build_inputs(spec: ComparisonSpec, workspace: Workspace, data_dir: Path) -> Inputs:
    """Load the corpus, resolve target/benchmark (demo defaults), make the validation and target splits."""
    from ..data.corpus import load_corpus, write_records

    corpus, target, benchmark = spec.corpus, spec.target, spec.benchmark
    if corpus == "demo":
        from ..demo.generate import ensure_demo

        folder = Path(ensure_demo(workspace.root))
        corpus = str(folder / "corpus.jsonl")
        target = target or _existing(folder / "target.jsonl")
        benchmark = benchmark or _existing(folder / "benchmark.jsonl")
    loaded = load_corpus(corpus, text_field=spec.text_field)
    frame, corpus_hash = loaded.frame.with_columns(pl.col("id").cast(pl.Utf8)), loaded.report.content_hash
    _check_group_column(spec.group_by, frame, f"corpus {corpus}")
    if spec.validation and spec.group_by:
        _check_group_column(spec.group_by, load_corpus(spec.validation).frame, f"validation file {spec.validation}")
    validation, note, removed, n_copies = spec.validation, f"validation file {spec.validation}", [], 0
    if validation is None and spec.validation_fraction > 0:
        held = holdout.validation_split(frame, spec.validation_fraction)
        if held.validation.height:
            validation = str((data_dir / "validation.jsonl").resolve())
            write_records(held.validation, validation)
            removed, n_copies = held.removed_ids, held.n_copies_removed
            frame = frame.filter(~pl.col("id").is_in(removed))
            note = (
                f"held out {held.validation.height} clean documents ({spec.validation_fraction:.0%}, seed "
                f"{holdout.HOLDOUT_SEED}) with their {n_copies} exact or near copies; they are not scored, "
                "selected or trained on"
            )
    if validation is None:
        note = "no validation set (val_loss is not reported)"
    if frame.height == 0:
        raise DataError(f"corpus {corpus} has no documents left to train on after the validation split")
    score_hash = hashlib.sha256(f"{corpus_hash}|holdout={sorted(removed)}".encode()).hexdigest()[:16]
    score_target, eval_target = _target_parts(spec, target, data_dir)
    return Inputs(
        frame, str(corpus), corpus_hash, score_hash, validation, note, n_copies, score_target, eval_target, benchmark
    )


def _check_group_column(group_by: str | None, frame: pl.DataFrame, what: str) -> None:
    """ConfigError unless ``frame`` has the ``group_by`` column (the runs evaluate by it)."""
    if group_by and group_by not in frame.columns:
        columns = ", ".join(c for c in frame.columns if c not in ("id", "text")) or "none"
        raise ConfigError(
            f"group_by={group_by!r}: the {what} has no such column (metadata columns: {columns}); "
            "pick one of them, or null for no evaluation by group"
        )


def _target_parts(spec: ComparisonSpec, target: str | None, data_dir: Path) -> tuple[str | None, str | None]:
    """(scoring part, evaluation part) of the target set as files: the split of ``target``, or the whole
    of it and the separate ``eval_target``."""
    from ..data.corpus import load_corpus, write_records

    if spec.eval_target is not None:
        return target, spec.eval_target
    if target is None:
        return None, None
    frame = load_corpus(target).frame  # every column: a group_by column evaluates target loss by group too
    try:
        score_part, eval_part = holdout.split_target(frame, spec.eval_target_fraction)
    except ValueError as exc:
        raise DataError(f"target set {target}: {exc}") from None
    paths = (data_dir / "score_target.jsonl").resolve(), (data_dir / "eval_target.jsonl").resolve()
    write_records(score_part, paths[0])
    write_records(eval_part, paths[1])
    return str(paths[0]), str(paths[1])


def _existing(path: Path) -> str | None:
    return str(path.resolve()) if path.exists() else None


# ----------------------------------------------------------------------------- scoring


def scores_key(corpus_hash: str, scorer: dict, settings: dict) -> str:
    """Cache key of a scoring: corpus content, scorer and the settings that change the scores."""
    blob = json.dumps({"corpus": corpus_hash, "scorer": scorer, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_cached_scores(scores_dir: Path) -> pl.DataFrame | None:
    """Scores of a finished cached scoring (status done and scores.parquet present), else None; a
    damaged cache entry is recomputed, never trusted."""
    try:
        status = read_json(scores_dir / STATUS_FILE, default={}) or {}
        if status.get("state") != "done":
            return None
        return pl.read_parquet(scores_dir / "scores.parquet")
    except Exception:  # DataError (damaged status), OSError, or polars' errors for a damaged file
        return None


def score_corpus(
    spec: ComparisonSpec,
    inputs: Inputs,
    workspace: Workspace,
    on_progress: ProgressFn = None,
    should_stop: StopFn = None,
) -> tuple[pl.DataFrame, ScoreInfo]:
    """Scores joined to the training frame: from a score column, the workspace cache, or computed now.

    Cached scorings live in ``scores/<method>-<key>/`` (key: corpus content, hold-out, scorer, settings).
    """
    frame, scorer = inputs.train, spec.scorer
    if scorer.score_field is not None:
        name = scorer.score_field
        if name not in frame.columns or not frame.schema[name].is_numeric():
            raise DataError(
                f"the corpus has no numeric column {name!r} to use as scores "
                f"(columns: {', '.join(frame.columns)}); give a scorer method instead"
            )
        return _drop_unscored(frame, ScoreInfo(None, name, scorer.direction))
    from ..scoring import get_scorer
    from ..scoring.runner import join_scores, run_scoring

    info = get_scorer(scorer.method)
    settings = {
        "model": scorer.model or spec.train.get("model", "cpu-demo"),
        "device": scorer.device or spec.train.get("device", "auto"),
        "seed": scorer.seed,
        "max_length": spec.train.get("max_length", 128),
        "batch_size": spec.train.get("batch_size", 16),
    }
    target_texts = None
    if info.needs_target:
        if not inputs.score_target:
            raise ConfigError(f"scorer {scorer.method!r} needs a target set; give 'target' (a clean JSONL) in the spec")
        from ..data.corpus import load_corpus

        target_texts = load_corpus(inputs.score_target).frame["text"].to_list()
        settings["target_hash"] = hashlib.sha256("\x00".join(target_texts).encode()).hexdigest()[:16]
    key = scores_key(inputs.score_hash, {"method": scorer.method, "options": scorer.options}, settings)
    scores_dir = workspace.scores / f"{scorer.method}-{key}"
    scores, cached, elapsed = read_cached_scores(scores_dir), True, 0.0
    if scores is None:
        cached = False
        call = {k: v for k, v in settings.items() if k != "target_hash"}
        result = run_scoring(
            frame,
            scorer.method,
            **call,
            target_texts=target_texts,
            options=dict(scorer.options),
            cache_dir=workspace.cache,
            on_progress=on_progress,
            should_stop=should_stop,
        )
        scores, elapsed = result.scores, result.elapsed_s
        scores_dir.mkdir(parents=True, exist_ok=True)
        scores.write_parquet(scores_dir / "scores.parquet")
        # "input" names the corpus, so the app lists this scoring with that dataset's scores (it covers
        # the corpus minus the validation hold-out)
        write_json(
            scores_dir / CONFIG_FILE,
            {
                **result.config,
                "input": str(Path(inputs.corpus_source).resolve()),
                "corpus_hash": inputs.corpus_hash,
                "score_hash": inputs.score_hash,
            },
        )
        write_json(
            scores_dir / STATUS_FILE,
            {
                "state": "done",
                "direction": result.direction,
                "created_at": now_iso(),
                "elapsed_s": round(elapsed, 3),
                "n_scored": scores.height,
            },
        )
    made = ScoreInfo(
        scorer.method,
        "score",
        info.direction,
        dict(scorer.options),
        settings,
        scores_dir.name,
        cached,
        round(elapsed, 3),
    )
    return _drop_unscored(join_scores(frame, scores, scorer.method), made)


def _drop_unscored(frame: pl.DataFrame, info: ScoreInfo) -> tuple[pl.DataFrame, ScoreInfo]:
    column = pl.col(info.score_field)
    kept = frame.filter(column.is_not_null() & column.cast(pl.Float64).is_finite())
    if kept.height == 0:
        raise DataError(f"no document has a finite {info.score_field!r}; check the scorer output")
    info.n_unscored = frame.height - kept.height
    return kept, info


def shared_tokenizer(train: pl.DataFrame, spec: ComparisonSpec, workspace: Workspace) -> Path:
    """One tokenizer for every arm: the model directory's own, else BPE trained once on every training
    document (before duplicate removal and selection, so arms that keep different documents still
    measure their losses in the same units)."""
    from ..data.tokenizer import DEFAULT_VOCAB_SIZE, train_tokenizer

    model = Path(str(spec.train.get("model", "cpu-demo")))
    if model.is_dir() and (model / "tokenizer.json").exists():
        return model.resolve()
    tok = train_tokenizer(
        train["text"].to_list(),
        vocab_size=int(spec.train.get("vocab_size", DEFAULT_VOCAB_SIZE)),
        cache_root=workspace.cache,
    )
    path = Path(tok.name_or_path)
    if not (path / "tokenizer.json").exists():
        raise DataError(f"the shared tokenizer was not saved under {workspace.cache}; check that it is writable")
    return path.resolve()


# ----------------------------------------------------------------------------- arms and runs


def _arm_data(arm: Arm, scored: pl.DataFrame, info: ScoreInfo) -> dict:
    """The arm's documents before ordering (dedup, then selection) and its manifest entry."""
    frame, n_duplicates = scored, 0
    if arm.dedup is not None:
        frame, result = arm.dedup.apply(frame)
        n_duplicates = result.n_dropped
    if arm.selection is not None:
        frame = arm.selection.apply(frame, info.score_field, info.direction == "higher_better")
        if frame.height == 0:
            raise DataError(
                f"arm {arm.label!r}: selection {arm.selection.to_dict()} kept no documents; raise k / "
                "ratio or lower the threshold"
            )
    entry = {
        "dedup": None if arm.dedup is None else arm.dedup.to_dict(),
        "selection": None if arm.selection is None else arm.selection.to_dict(),
        "n_duplicates": n_duplicates,
        "n_selected": frame.height,
    }
    return {"frame": frame, "entry": entry}


def _overlap_checks(inputs: Inputs, arm_data: dict) -> dict:
    """Held-out texts with a copy in an arm's training data (the largest count over the arms; each arm's
    own counts go into its manifest entry). Validation counts are 0 by construction (the split moves
    copies out of training); the evaluation target is not removed from training, so its counts say how
    many target texts the training data nearly contains (2 on the demo: paraphrases of corpus entries)."""
    from ..data.corpus import load_corpus

    held = {}
    if inputs.validation:
        held["validation"] = load_corpus(inputs.validation).frame["text"].to_list()
    if inputs.eval_target:
        held["eval_target"] = load_corpus(inputs.eval_target).frame["text"].to_list()
    worst: dict = {name: {"exact": 0, "near": 0} for name in held}
    for data in {id(d): d for d in arm_data.values()}.values():
        texts = data["frame"]["text"].to_list()
        data["entry"]["overlap"] = {name: holdout.overlap(h, texts) for name, h in held.items()}
        for name, counts in data["entry"]["overlap"].items():
            worst[name] = {k: max(worst[name][k], v) for k, v in counts.items()}
    if inputs.score_target and inputs.eval_target:
        score_texts = load_corpus(inputs.score_target).frame["text"].to_list()
        worst["score_vs_eval_target"] = holdout.overlap(held["eval_target"], score_texts)
    return worst


def _write_runs(
    spec: ComparisonSpec,
    workspace: Workspace,
    cmp_id: str,
    data_dir: Path,
    arm_data: dict,
    tokenizer_dir: Path,
    inputs: Inputs,
    info: ScoreInfo,
) -> list[dict]:
    runs = []
    for arm in spec.arms:
        for seed in spec.seeds:
            path = order_arm(arm, arm_data[arm.label]["frame"], seed, info.score_field, data_dir)
            run_dir = _write_run(
                spec, workspace, cmp_id, arm, seed, path, tokenizer_dir, inputs, info, arm_data[arm.label]["entry"]
            )
            runs.append(
                {
                    "id": run_dir.name,
                    "arm": arm.label,
                    "ordering": arm.ordering.to_dict(),
                    "seed": seed,
                    "input": str(path),
                }
            )
    return runs


def order_arm(arm: Arm, frame: pl.DataFrame, seed: int, score_field: str, data_dir: Path) -> Path:
    """Write the arm's ordered data; seed-independent orderings share one file across seeds."""
    from ..data.corpus import write_records

    name = (slug(arm.label) or "arm") + (f"-seed{seed}" if arm.ordering.per_seed else "")
    path = (data_dir / f"{name}.parquet").resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_records(arm.ordering.apply(frame, seed, score_field), path)
    return path


def _write_run(
    spec: ComparisonSpec,
    workspace: Workspace,
    cmp_id: str,
    arm: Arm,
    seed: int,
    data_file: Path,
    tokenizer_dir: Path,
    inputs: Inputs,
    info: ScoreInfo,
    data: dict,
) -> Path:
    from ..training.config import RunConfig

    provenance = {
        "comparison": cmp_id,
        "arm": arm.label,
        "ordering": {**arm.ordering.to_dict(), "label": arm.label},
        "seed": seed,
        "corpus": inputs.corpus_source,
        "corpus_hash": inputs.corpus_hash,
        "scorer": info.to_dict(),
        "selection": data["selection"],
        "dedup": data["dedup"],
        "n_selected": data["n_selected"],
        "validation_note": inputs.validation_note,
    }
    config = RunConfig.from_dict(
        {
            **spec.train,
            "input": str(data_file),
            "text_field": "text",
            "score_field": info.score_field,
            "tokenizer": str(tokenizer_dir),
            "cache_dir": str(workspace.cache.resolve()),
            "seed": int(seed),
            "validation": inputs.validation,
            "target": inputs.eval_target,
            "benchmark": inputs.benchmark,
            "group_by": spec.group_by,
            "provenance": provenance,
        }
    )
    run_dir = workspace.new_run_dir()
    write_json(run_dir / CONFIG_FILE, config.to_dict())
    return run_dir
