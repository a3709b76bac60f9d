"""The organising methods (delt-method.md sections 3-4): one registry for selection and ordering.

The CLI's choices, the app's widgets, comparison-spec validation and the typed configs
(``configs.SelectConfig`` / ``configs.OrderConfig``) all read these tables. Adding an ordering means
its function in ``ordering.py``, an entry here (with the knobs it reads) and a test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    """One selection or ordering method, for menus, help text and validation.

    Attributes:
        name: the method's name (the paper's words).
        description: one line for menus and ``--help``.
        source: "paper" or "beyond the paper".
        params: the knobs the method reads (selection: its one parameter; ordering: besides ``seed``
            and ``window``, which every ordering takes).
        per_seed: the order depends on the seed (shuffle), so each seed gets its own ordered file.
    """

    name: str
    description: str
    source: str
    params: tuple[str, ...] = ()
    per_seed: bool = False


SELECTIONS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("top-k", "keep the k best-scored samples (k is a count)", "paper", ("k",)),
        MethodInfo("top-r", "keep the best floor(r * N) samples (r is a share in (0, 1])", "paper", ("ratio",)),
        MethodInfo("threshold", "keep samples scored strictly better than t", "paper", ("threshold",)),
    )
}

ORDERINGS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("shuffle", "random order from a seed: the conventional baseline", "paper", per_seed=True),
        MethodInfo("sorting", "by score, ascending (easy -> hard curriculum) or descending", "paper", ("descending",)),
        MethodInfo(
            "folding",
            "Folding Ordering: L ascending passes, each over every L-th sorted sample, "
            "so the data is revisited from easy to hard L times",
            "paper",
            ("layers", "descending"),
        ),
        MethodInfo(
            "zigzag",
            "folding with every odd layer reversed (easy -> hard -> easy ...)",
            "beyond the paper",
            ("layers", "descending"),
        ),
    )
}

SYMBOLS = {"k": "k", "ratio": "r", "threshold": "t", "layers": "L", "window": "w"}  # the paper's letters

WINDOW_SHUFFLE = MethodInfo(
    "window",
    "shuffle within consecutive blocks of W training positions, on top of "
    "any ordering (local noise, same coarse order)",
    "beyond the paper",
    ("window",),
    per_seed=True,
)
LAYERED = tuple(name for name, info in ORDERINGS.items() if "layers" in info.params)
BASELINE_ORDERING = "shuffle"  # the paper's conventional baseline, which comparisons test against
