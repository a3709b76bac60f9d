"""Comparison specs: a set of runs that differ only in data ordering (and seed), prepared on disk.

A spec (JSON) names the corpus, the scorer, an optional duplicate removal (``dedup``, dedup.py) and
selection, the orderings, the seeds and the training settings (``RunConfig`` fields).
``prepare_comparison`` does the shared work once: hold out a validation split (when none is given),
score (or reuse cached scores), drop duplicates, select, train one tokenizer on
the selected corpus, then writes one ordered data file per arm (per seed for shuffle) and one run
directory per arm x seed, plus the manifest ``comparisons/<id>/comparison.json``. Launching the runs
is the job manager's work (``cli/runs.py``: ``compare``).

Validation split: without a ``validation`` file, a seeded ``validation_fraction`` (default 5%) of the
corpus' clean documents (``is_noise`` false, when the corpus has that column) is held out before
scoring; it is neither scored, selected nor trained on, and every run evaluates ``val_loss`` on it.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from .stats import pick_baseline
from .prepare import build_inputs, dedup_corpus, score_corpus, select_corpus, shared_tokenizer
from ..errors import ConfigError
from ..fileio import write_json
from ..progress import Progress, ProgressFn, StopFn, check_stop
from ..workspace.layout import Workspace

ORDERING_METHODS = ("shuffle", "sorting", "folding", "zigzag")
SELECTION_METHODS = ("top-k", "top-r", "threshold")
RESERVED_TRAIN_KEYS = ("input", "tokenizer", "seed", "validation", "target", "benchmark", "provenance", "score_field")

DEMO_SPEC: dict[str, Any] = {
    "name": "demo",
    "corpus": "demo",
    # length, not LQS: LQS on the 1925 demo documents takes about 1.5 minutes on a 2-core CPU by
    # itself, which would double the demo; `compare --demo --scorer lqs` runs it
    "scorer": {"method": "length"},
    "selection": None,
    "orderings": [{"method": "shuffle"}, {"method": "sorting"}, {"method": "folding", "layers": 3}],
    "seeds": [0, 1],
    # one epoch of the 1925 training documents: 68 steps of 16 packed 128-token rows (cpu-demo packs by
    # default), evaluated 5 times after step 0 (every 14 steps and at the end)
    "train": {"model": "cpu-demo", "device": "cpu", "batch_size": 16, "max_length": 128, "epochs": 1,
              "eval_every": 14, "lr": 3e-3, "eval_max_samples": 100},
}


def demo_spec(**overrides: Any) -> dict:
    """The default demo comparison: shuffle vs sorting vs folding L=3, 2 seeds, cpu-demo model."""
    spec = json.loads(json.dumps(DEMO_SPEC))
    spec.update(overrides)
    return spec


@dataclass(frozen=True)
class ComparisonSpec:
    """A validated comparison spec (see the module docstring)."""

    name: str = "comparison"
    corpus: str = "demo"
    text_field: str = "text"
    target: str | None = None
    benchmark: str | None = None
    validation: str | None = None
    validation_fraction: float = 0.05
    scorer: dict = field(default_factory=lambda: {"method": "length"})
    selection: dict | None = None
    dedup: dict | None = None
    orderings: tuple = ({"method": "shuffle"},)
    seeds: tuple = (0,)
    train: dict = field(default_factory=dict)

    @property
    def arms(self) -> list[tuple[str, dict]]:
        """(label, ordering) of every arm, e.g. ("folding L=3", {"method": "folding", "layers": 3})."""
        return [(arm_label(o), o) for o in self.orderings]

    def to_dict(self) -> dict:
        return {"name": self.name, "corpus": self.corpus, "text_field": self.text_field, "target": self.target,
                "benchmark": self.benchmark, "validation": self.validation,
                "validation_fraction": self.validation_fraction, "scorer": self.scorer, "selection": self.selection,
                "dedup": self.dedup, "orderings": list(self.orderings), "seeds": list(self.seeds), "train": self.train}


def describe_data(manifest: dict) -> str:
    """What a prepared comparison trained on, in one line (its manifest's counts and spec), e.g.
    "1,925 training documents · scored by lqs · 70 exact duplicates dropped · top-r 0.8 kept 1,484"."""
    spec = manifest.get("spec") or {}
    scorer = spec.get("scorer") or {}
    parts = [f"{manifest.get('n_train_docs', 0):,} training documents"]
    by = scorer.get("method") or scorer.get("scorer_method") or scorer.get("score_field")
    if by:
        parts.append(f"scored by {by}")
    if spec.get("dedup"):
        parts.append(f"{manifest.get('n_duplicates', 0):,} {spec['dedup']['mode']} duplicates dropped")
    sel = spec.get("selection")
    if sel:
        knob = next((sel[k] for k in ("k", "ratio", "threshold") if k in sel), "")
        parts.append(f"{sel['method']} {knob} kept {manifest.get('n_selected', 0):,}".replace("  ", " "))
    return " · ".join(parts)


def arm_label(ordering: dict) -> str:
    """A short label for an ordering: "shuffle", "sorting", "sorting desc", "folding L=3", "+ w=64"."""
    if ordering.get("label"):
        return str(ordering["label"])
    method = ordering["method"]
    label = method
    if method in ("folding", "zigzag"):
        label += f" L={ordering.get('layers', 3)}"
    if method != "shuffle" and ordering.get("descending"):
        label += " desc"
    if ordering.get("window"):
        label += f" w={ordering['window']}"
    return label


def parse_spec(source: dict | str | Path) -> ComparisonSpec:
    """Validate a spec given as a dict or a JSON file path; relative paths resolve against the file.

    Raises:
        ConfigError naming the field and the fix.
    """
    base = Path.cwd()
    if not isinstance(source, dict):
        path = Path(source)
        try:
            source = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"spec file {path} does not exist; write one or use `compare --demo`") from None
        except IsADirectoryError:
            raise ConfigError(f"spec file {path} is a folder; give the path of the spec's JSON file itself") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"spec file {path} is not UTF-8 text (invalid byte at offset {exc.start}); save it "
                              f"as UTF-8 JSON") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"spec file {path} is not valid JSON: {exc}") from None
        base = path.resolve().parent
    if not isinstance(source, dict):
        raise ConfigError("a comparison spec must be a JSON object")
    known = set(ComparisonSpec.__dataclass_fields__)
    unknown = sorted(set(source) - known)
    if unknown:
        raise ConfigError(f"unknown spec key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    spec = ComparisonSpec(**{k: v for k, v in source.items()})
    spec = replace(spec, orderings=tuple(_check_ordering(o) for o in _as_list(spec.orderings, "orderings")),
                   seeds=tuple(_check_seeds(spec.seeds)), train=_check_train(spec.train),
                   scorer=_check_scorer(spec.scorer), selection=_check_selection(spec.selection),
                   dedup=_check_dedup(spec.dedup), **_resolve_paths(spec, base))
    labels = [label for label, _ in spec.arms]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"orderings give duplicate arms {labels}; give each a distinct 'label'")
    if not 0.0 <= float(spec.validation_fraction) < 0.5:
        raise ConfigError(f"validation_fraction={spec.validation_fraction} must be in [0, 0.5) (e.g. 0.05)")
    return spec


def _as_list(value, name: str) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"spec field {name!r} must be a non-empty list")
    return list(value)


def _check_ordering(o) -> dict:
    if isinstance(o, str):
        o = {"method": o}
    if not isinstance(o, dict) or o.get("method") not in ORDERING_METHODS:
        raise ConfigError(f"ordering {o!r} needs a 'method' in {', '.join(ORDERING_METHODS)}")
    allowed = {"method", "layers", "descending", "window", "label"}
    if set(o) - allowed:
        raise ConfigError(f"ordering {o!r} has unknown key(s) {sorted(set(o) - allowed)}; allowed: {sorted(allowed)}")
    layers = o.get("layers", 3)
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise ConfigError(f"ordering {o!r}: layers must be an integer >= 1 (the paper uses L=3)")
    return dict(o)


def _check_seeds(seeds) -> list[int]:
    seeds = _as_list(seeds, "seeds")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={seeds} must be distinct non-negative integers, e.g. [0, 1, 2]")
    return seeds


def _check_train(train) -> dict:
    if not isinstance(train, dict):
        raise ConfigError("spec field 'train' must be an object of RunConfig fields (model, steps, lr, ...)")
    reserved = sorted(set(train) & set(RESERVED_TRAIN_KEYS))
    if reserved:
        raise ConfigError(f"train.{reserved[0]} is set by the comparison itself; remove it from 'train' "
                          "(use 'seeds', 'target', 'benchmark', 'validation' at the top level)")
    from ..training.config import RunConfig

    RunConfig.from_dict({**train, "input": "ordered.parquet"})  # typos and ranges fail now, before any work
    return dict(train)


def _check_scorer(scorer) -> dict:
    if not isinstance(scorer, dict) or not (("method" in scorer) ^ ("score_field" in scorer)):
        raise ConfigError("spec field 'scorer' must be {\"method\": NAME, \"options\": {...}} or, for a corpus "
                          "that is already scored, {\"score_field\": COLUMN}")
    if "method" in scorer:
        from ..scoring import get_scorer

        get_scorer(scorer["method"])
    return dict(scorer)


def _check_selection(selection) -> dict | None:
    if selection is None:
        return None
    if not isinstance(selection, dict) or selection.get("method") not in SELECTION_METHODS:
        raise ConfigError(f"selection {selection!r} needs a 'method' in {', '.join(SELECTION_METHODS)}, or null")
    return dict(selection)


def _check_dedup(dedup) -> dict | None:
    """null, or {"mode": "exact" | "near", "threshold"?, "ngram"?, "num_perm"?} (see dedup.py)."""
    from ..data.dedup import MODES, find_duplicates

    if dedup is None:
        return None
    if not isinstance(dedup, dict) or dedup.get("mode") not in MODES:
        raise ConfigError(f"dedup {dedup!r} needs a 'mode' in {', '.join(MODES)} (e.g. {{\"mode\": \"exact\"}}), "
                          "or null to keep duplicates")
    unknown = sorted(set(dedup) - {"mode", "threshold", "ngram", "num_perm"})
    if unknown:
        raise ConfigError(f"unknown dedup key(s) {', '.join(unknown)}; allowed: mode, threshold, ngram, num_perm")
    find_duplicates([], **dedup)  # checks the values now, before anything is prepared
    return dict(dedup)


def _resolve_paths(spec: ComparisonSpec, base: Path) -> dict:
    out = {}
    for name in ("corpus", "target", "benchmark", "validation"):
        value = getattr(spec, name)
        if value is None or (name == "corpus" and value == "demo"):
            continue
        if not isinstance(value, str) or not value:
            hint = ' or "demo"' if name == "corpus" else ""
            raise ConfigError(f"spec field {name!r} must be a file path{hint}, got {value!r}")
        out[name] = str((base / Path(value).expanduser()).resolve())
    return out


# ----------------------------------------------------------------------------- preparing

@dataclass
class Comparison:
    """A prepared comparison: its id, folder, manifest and run directories (arm x seed)."""

    id: str
    dir: Path
    manifest: dict
    run_dirs: list[Path]


def prepare_comparison(spec: ComparisonSpec | dict | str | Path, workspace: Workspace,
                       on_progress: ProgressFn = None, should_stop: StopFn = None) -> Comparison:
    """Score once, select once, order per arm and write every run directory of the comparison.

    Args:
        spec: a ComparisonSpec, or a dict / JSON path for ``parse_spec``.
        workspace: where scores, the tokenizer cache, runs and the manifest go.
        on_progress: receives one Progress per preparation phase (and the scorer's own progress).
        should_stop: stop flag; raises Cancelled between phases.
    Returns:
        The Comparison; its runs are ready to submit (``JobManager.submit(run_dir, "train")``).
    """
    spec = spec if isinstance(spec, ComparisonSpec) else parse_spec(spec)
    cmp_dir = workspace.new_comparison_dir(_slug(spec.name))
    try:
        manifest = _prepare(spec, workspace, cmp_dir, _phase_reporter(on_progress), on_progress, should_stop)
    except BaseException:
        shutil.rmtree(cmp_dir, ignore_errors=True)  # no half-made comparison; cached scores stay
        raise
    return Comparison(cmp_dir.name, cmp_dir, manifest, [workspace.root / "runs" / r["id"] for r in manifest["runs"]])


def _prepare(spec: ComparisonSpec, workspace: Workspace, cmp_dir: Path, report, on_progress: ProgressFn,
             should_stop: StopFn) -> dict:
    data_dir = cmp_dir / "data"
    report(0, "loading the corpus")
    inputs = build_inputs(spec, workspace, data_dir)
    check_stop(should_stop)
    report(1, "scoring")
    scored, score_info = score_corpus(spec, inputs, workspace, on_progress, should_stop)
    report(2, "removing duplicates and selecting" if spec.dedup else "selecting")
    unique, n_duplicates = dedup_corpus(spec, scored)
    selected = select_corpus(spec, unique, score_info)
    report(3, "training the shared tokenizer")
    tokenizer_dir = shared_tokenizer(selected, spec, workspace)
    check_stop(should_stop)
    report(4, "ordering and writing run configs")
    files = {(label, seed): order_arm(selected, ordering, seed, score_info["score_field"], data_dir)
             for label, ordering in spec.arms for seed in spec.seeds}
    runs = []
    for label, ordering in spec.arms:
        for seed in spec.seeds:
            run_dir = _write_run(spec, workspace, cmp_dir.name, label, ordering, seed, files[label, seed],
                                 tokenizer_dir, inputs, score_info, selected.height)
            runs.append({"id": run_dir.name, "arm": label, "ordering": ordering, "seed": seed,
                         "input": str(files[label, seed])})
    labels = [label for label, _ in spec.arms]
    manifest = {"id": cmp_dir.name, "name": spec.name, "spec": spec.to_dict(), "baseline": pick_baseline(labels),
                "arms": labels, "seeds": list(spec.seeds), "runs": runs, "corpus_hash": inputs["corpus_hash"],
                "scores": score_info, "tokenizer": str(tokenizer_dir), "n_train_docs": inputs["train"].height,
                "n_duplicates": n_duplicates, "n_selected": selected.height,
                "validation": inputs["validation"],
                "validation_note": inputs["validation_note"]}
    write_json(cmp_dir / "comparison.json", manifest)
    report(5, f"{len(runs)} runs ready")
    return manifest


def load_comparison(workspace: Workspace, comparison_id: str) -> Comparison:
    """A prepared comparison read back from its manifest."""
    manifest = workspace.load_comparison(comparison_id)
    cmp_dir = workspace.comparison_dir(comparison_id)
    return Comparison(comparison_id, cmp_dir, manifest, [workspace.root / "runs" / r["id"] for r in manifest["runs"]])


def _write_run(spec: ComparisonSpec, workspace: Workspace, cmp_id: str, label: str, ordering: dict, seed: int,
               data_file: Path, tokenizer_dir: Path, inputs: dict, score_info: dict, n_selected: int) -> Path:
    from ..training.config import RunConfig

    provenance = {"comparison": cmp_id, "arm": label, "ordering": {**ordering, "label": label}, "seed": seed,
                  "corpus": inputs["corpus_source"], "corpus_hash": inputs["corpus_hash"],
                  "scorer": score_info, "selection": spec.selection, "n_selected": n_selected,
                  "validation_note": inputs["validation_note"]}
    config = RunConfig.from_dict({**spec.train, "input": str(data_file), "text_field": "text",
                                  "score_field": score_info["score_field"], "tokenizer": str(tokenizer_dir),
                                  "cache_dir": str(workspace.cache.resolve()), "seed": int(seed),
                                  "validation": inputs["validation"], "target": inputs["target"],
                                  "benchmark": inputs["benchmark"], "provenance": provenance})
    run_dir = workspace.new_run_dir()
    write_json(run_dir / "config.json", config.to_dict())
    return run_dir


def _phase_reporter(on_progress: ProgressFn, total: int = 5):
    def report(done: int, message: str) -> None:
        if on_progress is not None:
            on_progress(Progress("prepare", done, total, None, message))
    return report


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40] or "cmp"


def order_arm(selected: pl.DataFrame, ordering: dict, seed: int, score_field: str, data_dir: Path) -> Path:
    """Write the arm's ordered data; seed-independent orderings share one file across seeds."""
    from ..data.corpus import write_records
    from ..organize.ordering import order

    per_seed = ordering["method"] == "shuffle" or bool(ordering.get("window"))
    path = (data_dir / (_slug(arm_label(ordering)) + (f"-seed{seed}" if per_seed else "") + ".parquet")).resolve()
    if not path.exists():
        ordered = order(selected, ordering["method"], layers=ordering.get("layers", 3),
                        descending=bool(ordering.get("descending", False)), window=ordering.get("window"),
                        seed=seed, score_field=score_field)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_records(ordered, path)
    return path
