"""The metrics a run records: one registry of names, labels and directions.

Every reader asks this module what a metric means: the training loop's summary, the comparison
statistics and verdicts, the CLI report and the app's charts and tables. Adding a metric is one entry
here plus the code that computes it (``evaluation.run_eval`` for evaluation metrics).

Records in ``metrics.jsonl`` are of two kinds: *train* records (every ``log_every`` steps) and *eval*
records (step 0, every ``eval_every`` steps and the last step). Per-task benchmark results are nested
(``{"bench": {"facts": {"acc": ..}}}``) and appear flattened as ``bench.<task>.<acc|acc_norm>``.
Losses by group (``group_by``) are nested too, ``{"group_loss": {"kind": {"story": ..}}}``, and appear
flattened as ``group_loss.<column>.<value>`` (``split_group_metric`` takes such a name apart).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One recorded metric.

    Attributes:
        name: the key in metrics.jsonl records.
        label: how pages and reports name it.
        lower_is_better: True for losses, False for accuracies, None when it is not a quality
            metric (learning rate, throughput, timing).
        kind: "train" (train records), "eval" (evaluation records) or "group" (evaluation records, one
            value per group of the ``group_by`` column, nested by column and group).
        verdict: tested in a comparison's verdicts (paired over seeds, Holm-adjusted).
        table: shown in comparison tables (in registry order).
        live: drawn as a live chart beside the loss on the Train page.
    """

    name: str
    label: str
    lower_is_better: bool | None
    kind: str
    verdict: bool = False
    table: bool = False
    live: bool = False

    def __post_init__(self):
        if (self.verdict or self.table) and self.lower_is_better is None:
            raise ValueError(
                f"metric {self.name!r}: a verdict or table metric needs a direction (lower_is_better "
                "True or False): comparisons test and tabulate losses and accuracies only"
            )


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("target_loss", "target loss", True, "eval", verdict=True, table=True, live=True),
        Metric("val_loss", "validation loss", True, "eval", table=True, live=True),
        # the same losses in bits per UTF-8 byte of the predicted text: comparable across tokenizers and models
        Metric("target_bpb", "target bits per byte", True, "eval", table=True),
        Metric("val_bpb", "validation bits per byte", True, "eval", table=True),
        # the paper reports acc_norm (length-normalised log-likelihood), so verdicts use it
        Metric("bench_acc_norm", "benchmark accuracy (norm)", False, "eval", verdict=True, table=True),
        Metric("bench_acc", "benchmark accuracy", False, "eval", table=True, live=True),
        Metric("group_loss", "validation loss by group", True, "group"),
        Metric("target_group_loss", "target loss by group", True, "group"),
        Metric("train_loss", "train loss", True, "train", table=True),
        Metric("lr", "learning rate", None, "train"),
        Metric("tok_s", "tokens per second", None, "train"),
        Metric("batch_score", "mean score of the batch", None, "train"),
        Metric("epoch", "epoch", None, "train"),
        Metric("elapsed_s", "elapsed seconds", None, "train"),
    )
}

EVAL_METRICS = tuple(m.name for m in METRICS.values() if m.kind == "eval")
VERDICT_METRICS = tuple(m.name for m in METRICS.values() if m.verdict)
TABLE_METRICS = tuple(m.name for m in METRICS.values() if m.table)
LIVE_METRICS = tuple(m.name for m in METRICS.values() if m.live)
GROUP_METRICS = tuple(m.name for m in METRICS.values() if m.kind == "group")
# the overall metric each group metric splits (its groups' losses average back to it, token-weighted)
GROUP_OF = {"group_loss": "val_loss", "target_group_loss": "target_loss"}
INFO_METRICS = tuple(m.name for m in METRICS.values() if m.lower_is_better is None)


def lower_is_better(name: str) -> bool:
    """Direction of ``name``: the registry's, else losses (``*loss*``) lower and everything else
    (``bench.<task>.acc``, ...) higher."""
    metric = METRICS.get(name)
    if metric is not None and metric.lower_is_better is not None:
        return metric.lower_is_better
    return "loss" in name


def is_quality(name: str) -> bool:
    """A loss or an accuracy (registered or a per-task ``bench.*`` column), not lr, throughput or timing."""
    metric = METRICS.get(name)
    return metric.lower_is_better is not None if metric is not None else name.startswith("bench.")


def label(name: str) -> str:
    """The registry's label; for a flattened group metric "validation loss, kind = story"; else the name
    with spaces (e.g. ``bench.facts.acc``)."""
    metric = METRICS.get(name)
    if metric is not None:
        return metric.label
    parts = split_group_metric(name)
    if parts is not None:
        return f"{METRICS[GROUP_OF[parts[0]]].label}, {parts[1]} = {parts[2]}"
    return name.replace("_", " ")


def split_group_metric(name: str) -> tuple[str, str, str] | None:
    """(metric, column, group) of a flattened group metric such as ``group_loss.kind.story``, else None.

    Column names hold no '.' (RunConfig refuses them), so the group is everything after the second dot.
    """
    head, sep, rest = name.partition(".")
    if not sep or head not in GROUP_METRICS:
        return None
    column, sep, group = rest.partition(".")
    return (head, column, group) if sep and column and group else None
