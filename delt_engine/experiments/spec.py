"""Comparison specs: what one comparison trains (arms x seeds) and on what data, validated.

A spec (JSON) names the corpus, the scorer, the arms, the seeds and the training settings (``RunConfig``
fields). An *arm* is a full recipe: optional duplicate removal, optional selection, an ordering with
its own knobs, and a label::

    "arms": [{"label": "conventional", "selection": null, "ordering": "shuffle"},
             {"label": "DELT", "selection": {"method": "top-r", "ratio": 0.8},
              "ordering": {"method": "folding", "layers": 3}}]

An arm that leaves out ``selection`` or ``dedup`` takes the spec's top-level one; ``"orderings": [...]``
is shorthand for arms that differ only in their ordering. Arm labels must stay distinct once turned into
file names. ``prepare.prepare_comparison`` turns a spec into run directories; the held-out data it
makes (validation split, target split) is described in ``holdout``.

Evaluation by group: ``group_by`` (top level, a metadata column of the corpus such as the demo's
``kind``; null for none) goes into every run's config, so each evaluation also records the validation
(and target) loss per group; the held-out validation split keeps the corpus' columns for it.
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data.dedup import DedupConfig
from ..errors import ConfigError
from ..fileio import json_problem
from ..organize.configs import OrderConfig, SelectConfig
from ..organize.registry import BASELINE_ORDERING
from .holdout import EVAL_TARGET_FRACTION

RESERVED_TRAIN_KEYS = (
    "input",
    "tokenizer",
    "seed",
    "validation",
    "target",
    "benchmark",
    "provenance",
    "score_field",
    "group_by",
)
DEMO_SEEDS = (0, 1, 2)  # with fewer, a paired t interval has 1 degree of freedom (t = 12.7) and resolves little

DEMO_SPEC: dict[str, Any] = {
    "name": "demo",
    "corpus": "demo",
    # length, not LQS: LQS on the demo documents takes about 1.5 minutes on a 2-core CPU by
    # itself, which would double the demo; `compare --demo --scorer lqs` runs it
    "scorer": {"method": "length"},
    "selection": None,
    "orderings": [{"method": "shuffle"}, {"method": "sorting"}, {"method": "folding", "layers": 3}],
    "seeds": list(DEMO_SEEDS),
    "group_by": "kind",  # validation and target loss per kind of document, and the stream's make-up by kind
    # one epoch of the demo's training documents: ~68 steps of 16 packed 128-token rows (cpu-demo packs by
    # default), evaluated 5 times after step 0 (every 14 steps and at the end)
    "train": {
        "model": "cpu-demo",
        "device": "cpu",
        "batch_size": 16,
        "max_length": 128,
        "epochs": 1,
        "eval_every": 14,
        "lr": 3e-3,
        "eval_max_samples": 100,
    },
}


def demo_spec(**overrides: Any) -> dict:
    """The default demo comparison: shuffle vs sorting vs folding L=3, 3 seeds, cpu-demo model."""
    spec = json.loads(json.dumps(DEMO_SPEC))
    spec.update(overrides)
    return spec


def slug(text: str) -> str:
    """``text`` as a file-name part: lower-case letters, digits and single dashes (at most 40)."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40]


@dataclass(frozen=True)
class ScorerSpec:
    """How the comparison's documents get their scores: a registered ``method`` (scored once, cached in
    the workspace), or a ``score_field`` the corpus already has (with its ``direction``).

    ``scores_job`` / ``scorer_method`` record where an app-made scored corpus came from (provenance).
    """

    method: str | None = None
    options: dict = field(default_factory=dict)
    model: str | None = None
    device: str | None = None
    seed: int = 0
    score_field: str | None = None
    direction: str = "higher_better"
    scores_job: str | None = None
    scorer_method: str | None = None

    def __post_init__(self):
        if (self.method is None) == (self.score_field is None):
            raise ConfigError(
                'spec field \'scorer\' must be {"method": NAME, "options": {...}} or, for a corpus '
                'that is already scored, {"score_field": COLUMN}'
            )
        if not isinstance(self.options, dict):
            raise ConfigError(f"scorer options={self.options!r} must be an object of scorer settings")
        if self.method is not None:
            from ..scoring.registry import check_options

            check_options(self.method, self.options)
        if self.direction not in ("higher_better", "higher_harder"):
            raise ConfigError(f"scorer direction={self.direction!r} must be 'higher_better' or 'higher_harder'")

    @classmethod
    def from_dict(cls, data: Any) -> ScorerSpec:
        if not isinstance(data, dict):
            raise ConfigError(f"spec field 'scorer' must be an object, got {data!r}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown scorer key(s) {', '.join(unknown)}; allowed: {', '.join(known)}")
        return cls(**data)

    def to_dict(self) -> dict:
        """The spec format: the fields that differ from their defaults (and the direction of a score field)."""
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != (f.default if f.default is not MISSING else f.default_factory())
        }
        if self.score_field is not None:
            out["direction"] = self.direction
        return out

    @property
    def label(self) -> str:
        """What the scores are: the method, the app scoring's method, or the column."""
        return self.method or self.scorer_method or self.score_field


@dataclass(frozen=True)
class Arm:
    """One arm of a comparison: the recipe that turns the scored corpus into its training order."""

    label: str
    ordering: OrderConfig
    selection: SelectConfig | None = None
    dedup: DedupConfig | None = None

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "ordering": self.ordering.to_dict(),
            "selection": None if self.selection is None else self.selection.to_dict(),
            "dedup": None if self.dedup is None else self.dedup.to_dict(),
        }

    @property
    def data_key(self) -> tuple:
        """Arms with equal keys train on the same documents (before ordering)."""
        return (self.dedup, self.selection)


@dataclass(frozen=True)
class ComparisonSpec:
    """A validated comparison spec (see the module docstring). Paths are absolute."""

    name: str = "comparison"
    description: str | None = None  # for people: what the comparison asks (presets say what the paper found)
    corpus: str = "demo"
    text_field: str = "text"
    target: str | None = None
    eval_target: str | None = None
    eval_target_fraction: float = EVAL_TARGET_FRACTION
    benchmark: str | None = None
    validation: str | None = None
    validation_fraction: float = 0.05
    scorer: ScorerSpec = field(default_factory=lambda: ScorerSpec(method="length"))
    selection: SelectConfig | None = None
    dedup: DedupConfig | None = None
    arms: tuple[Arm, ...] = (Arm("shuffle", OrderConfig("shuffle")),)
    seeds: tuple[int, ...] = (0,)
    baseline: str | None = None
    train: dict = field(default_factory=dict)
    group_by: str | None = None

    @property
    def labels(self) -> list[str]:
        return [arm.label for arm in self.arms]

    @property
    def baseline_label(self) -> str:
        """The arm the others are tested against: ``baseline`` if given, else the first shuffle arm (the
        paper's conventional baseline), else the first arm."""
        if self.baseline:
            return self.baseline
        return next((a.label for a in self.arms if a.ordering.method == BASELINE_ORDERING), self.arms[0].label)

    def to_dict(self) -> dict:
        """The spec as JSON (every arm written out in full), which ``parse_spec`` reads back unchanged."""
        return {
            "name": self.name,
            "description": self.description,
            "corpus": self.corpus,
            "text_field": self.text_field,
            "target": self.target,
            "eval_target": self.eval_target,
            "eval_target_fraction": self.eval_target_fraction,
            "benchmark": self.benchmark,
            "validation": self.validation,
            "validation_fraction": self.validation_fraction,
            "scorer": self.scorer.to_dict(),
            "selection": None if self.selection is None else self.selection.to_dict(),
            "dedup": None if self.dedup is None else self.dedup.to_dict(),
            "arms": [a.to_dict() for a in self.arms],
            "seeds": list(self.seeds),
            "baseline": self.baseline,
            "train": self.train,
            "group_by": self.group_by,
        }


def parse_spec(source: dict | str | Path) -> ComparisonSpec:
    """Validate a spec given as a dict or a JSON file path; relative paths resolve against the file.

    Raises:
        ConfigError naming the field and the fix.
    """
    base = Path.cwd()
    if not isinstance(source, dict):
        path = Path(source)
        source = _read_spec_file(path)
        base = path.resolve().parent
    if not isinstance(source, dict):
        raise ConfigError("a comparison spec must be a JSON object")
    known = {f.name for f in fields(ComparisonSpec)} | {"orderings"}
    unknown = sorted(set(source) - known)
    if unknown:
        raise ConfigError(f"unknown spec key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    values = {k: v for k, v in source.items() if k not in ("orderings", "arms")}
    selection = None if source.get("selection") is None else SelectConfig.from_dict(source["selection"])
    dedup = None if source.get("dedup") is None else DedupConfig.from_dict(source["dedup"])
    scorer = source.get("scorer", {"method": "length"})
    if isinstance(scorer, dict) and scorer.get("model") is not None:
        scorer = {**scorer, "model": _model_path(scorer["model"], base)}
    train = source.get("train", {})
    if isinstance(train, dict):
        train = {
            k: _model_path(v, base) if k in ("model", "tokenizer") and v is not None else v for k, v in train.items()
        }
    values.update(
        scorer=ScorerSpec.from_dict(scorer),
        selection=selection,
        dedup=dedup,
        arms=_arms(source, selection, dedup),
        seeds=tuple(_check_seeds(source.get("seeds", [0]))),
        train=_check_train(train),
        group_by=_check_group_by(source.get("group_by")),
        **_resolve_paths(source, base),
    )
    spec = ComparisonSpec(**values)
    _check_labels(spec)
    if not _is_number(spec.validation_fraction) or not 0.0 <= spec.validation_fraction < 0.5:
        raise ConfigError(f"validation_fraction={spec.validation_fraction!r} must be in [0, 0.5) (e.g. 0.05)")
    if not _is_number(spec.eval_target_fraction) or not 0.0 < spec.eval_target_fraction < 1.0:
        raise ConfigError(
            f"eval_target_fraction={spec.eval_target_fraction!r} must be in (0, 1) (e.g. 0.5: half of "
            "the target set evaluates target_loss, the other half is what LQS/PDS aim at)"
        )
    if spec.baseline is not None and spec.baseline not in spec.labels:
        raise ConfigError(f"baseline={spec.baseline!r} is not one of the arms ({', '.join(spec.labels)})")
    return spec


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_spec_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"spec file {path} does not exist; write one or use `compare --demo`") from None
    except IsADirectoryError:
        raise ConfigError(f"spec file {path} is a folder; give the path of the spec's JSON file itself") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"spec file {path} is not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8 JSON"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"spec file {path} is not valid JSON ({json_problem(exc)}); fix the file") from None


def _arms(source: dict, selection: SelectConfig | None, dedup: DedupConfig | None) -> tuple[Arm, ...]:
    if ("arms" in source) == ("orderings" in source):
        raise ConfigError(
            "a spec needs either 'arms' (recipes: label, selection, dedup, ordering) or 'orderings' "
            "(arms that differ only in their ordering), not both"
        )
    if "orderings" in source:
        raw = [{"ordering": o} for o in _as_list(source["orderings"], "orderings")]
    else:
        raw = _as_list(source["arms"], "arms")
    return tuple(_arm(item, selection, dedup) for item in raw)


def _arm(item: Any, selection: SelectConfig | None, dedup: DedupConfig | None) -> Arm:
    if not isinstance(item, dict) or "ordering" not in item:
        raise ConfigError(f"arm {item!r} must be an object with an 'ordering' (and optional label, selection, dedup)")
    unknown = sorted(set(item) - {"label", "ordering", "selection", "dedup"})
    if unknown:
        raise ConfigError(f"arm {item!r} has unknown key(s) {unknown}; allowed: label, ordering, selection, dedup")
    raw_ordering = item["ordering"]
    ordering = OrderConfig.from_dict(raw_ordering)
    own_selection, own_dedup = "selection" in item, "dedup" in item
    if own_selection:
        selection = None if item["selection"] is None else SelectConfig.from_dict(item["selection"])
    if own_dedup:
        dedup = None if item["dedup"] is None else DedupConfig.from_dict(item["dedup"])
    label = item.get("label")
    if label is None:  # a default that says what this arm does differently
        label = ordering.name
        if own_selection:
            label += f" · {selection.label if selection else 'all data'}"
        if own_dedup and dedup:
            label += f" · {dedup.mode} dedup"
    if not isinstance(label, str) or not label.strip():
        raise ConfigError(f"arm label {label!r} must be a non-empty string")
    return Arm(label.strip(), ordering, selection, dedup)


def _check_labels(spec: ComparisonSpec) -> None:
    """Arm labels must differ, also once turned into file names (each arm's data file is named after it)."""
    seen: dict[str, str] = {}
    for label in spec.labels:
        key = slug(label) or "arm"
        if key in seen:
            same = "the same label" if seen[key] == label else f"the same file name ({key!r})"
            raise ConfigError(f"arms {seen[key]!r} and {label!r} have {same}; give each arm a distinct 'label'")
        seen[key] = label


def _as_list(value, name: str) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"spec field {name!r} must be a non-empty list")
    return list(value)


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
        raise ConfigError(
            f"train.{reserved[0]} is set by the comparison itself; remove it from 'train' "
            "(use 'seeds', 'target', 'benchmark', 'validation' at the top level)"
        )
    from ..training.config import RunConfig

    RunConfig.from_dict({**train, "input": "ordered.parquet"})  # typos and ranges fail now, before any work
    return dict(train)


def _check_group_by(group_by) -> str | None:
    """null, or the name of a metadata column to evaluate by (the same rule as ``RunConfig.group_by``)."""
    if group_by is None:
        return None
    from ..training.config import RunConfig

    RunConfig(input="ordered.parquet", group_by=group_by)
    return group_by


def _model_path(value, base: Path):
    """A model or tokenizer folder given relative to the spec file, made absolute (so the prepared runs load
    it from any directory); presets, Hub ids and anything that is no folder there stay as written."""
    from ..models.presets import PRESETS

    if not isinstance(value, str) or not value or value in PRESETS:
        return value
    folder = base / Path(value).expanduser()
    return str(folder.resolve()) if folder.is_dir() else value


def _resolve_paths(source: dict, base: Path) -> dict:
    out = {}
    for name in ("corpus", "target", "eval_target", "benchmark", "validation"):
        value = source.get(name)
        if value is None or (name == "corpus" and value == "demo"):
            continue
        if not isinstance(value, str) or not value:
            hint = ' or "demo"' if name == "corpus" else ""
            raise ConfigError(f"spec field {name!r} must be a file path{hint}, got {value!r}")
        out[name] = str((base / Path(value).expanduser()).resolve())
    return out


def describe_data(manifest: dict) -> str:
    """What a prepared comparison trained on, in one line (its manifest's counts and spec), e.g.
    "1,925 training documents · scored by lqs · top-r 0.8 kept 1,540" (per arm when the arms' data differ)."""
    spec = manifest.get("spec") or {}
    scorer = spec.get("scorer") or {}
    parts = [f"{manifest.get('n_train_docs', 0):,} training documents"]
    by = scorer.get("method") or scorer.get("scorer_method") or scorer.get("score_field")
    if by:
        parts.append(f"scored by {by}")
    data = manifest.get("arm_data")
    if not data:  # a manifest written before arms were recipes: one selection for every arm
        data = {
            "": {
                "dedup": spec.get("dedup"),
                "selection": spec.get("selection"),
                "n_duplicates": manifest.get("n_duplicates", 0),
                "n_selected": manifest.get("n_selected", 0),
            }
        }
    described = {label: _describe_arm_data(d) for label, d in data.items()}
    if len(set(described.values())) == 1:
        parts += [p for p in next(iter(described.values())).split(" · ") if p]
    else:
        parts += [f"{label}: {text or 'all documents'}" for label, text in described.items()]
    return " · ".join(parts)


def _describe_arm_data(data: dict) -> str:
    parts = []
    if data.get("dedup"):
        parts.append(f"{data.get('n_duplicates', 0):,} {data['dedup']['mode']} duplicates dropped")
    sel = data.get("selection")
    if sel:
        knob = next((sel[k] for k in ("k", "ratio", "threshold") if k in sel), "")
        parts.append(f"{sel['method']} {knob} kept {data.get('n_selected', 0):,}".replace("  ", " "))
    return " · ".join(parts)
