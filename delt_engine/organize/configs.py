"""Typed configs of the organising steps, as comparisons, the app and the CLI pass them around.

``SelectConfig`` and ``OrderConfig`` are frozen, validated on construction (``ConfigError`` naming the
field, the value and the allowed range) and read and written in the comparison-spec JSON format:
``{"method": "top-r", "ratio": 0.8}``, ``{"method": "folding", "layers": 3, "label": "FO"}``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import polars as pl

from ..errors import ConfigError
from .registry import LAYERED, ORDERINGS, SELECTIONS, SYMBOLS


def _from_dict(cls, data: Any, what: str, allowed_methods) -> dict:
    if isinstance(data, str):
        data = {"method": data}
    if not isinstance(data, dict) or data.get("method") not in allowed_methods:
        raise ConfigError(f"{what} {data!r} needs a 'method' in {', '.join(allowed_methods)}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{what} {data!r} has unknown key(s) {unknown}; allowed: {sorted(known)}")
    return dict(data)


def describe_selection(selection: dict) -> str:
    """A selection in the spec format in the paper's words, e.g. "top-r, r = 0.8" (not validated, so a
    page can show what the user typed before the launch checks it)."""
    param = SELECTIONS[selection["method"]].params[0]
    return f"{selection['method']}, {SYMBOLS[param]} = {selection.get(param)}"


@dataclass(frozen=True)
class SelectConfig:
    """A selection (paper section 3): the method and its one parameter.

    ``higher_is_better`` None means "as the scorer's direction says" (the usual case).
    """

    method: str
    k: int | None = None
    ratio: float | None = None
    threshold: float | None = None
    higher_is_better: bool | None = None

    def __post_init__(self):
        from .selection import check_select_config

        check_select_config(self.method, self.k, self.ratio, self.threshold)
        if self.higher_is_better is not None and not isinstance(self.higher_is_better, bool):
            raise ConfigError(f"selection higher_is_better={self.higher_is_better!r} must be true, false or null")

    @classmethod
    def from_dict(cls, data: Any) -> SelectConfig:
        """From the spec format, e.g. ``{"method": "top-r", "ratio": 0.8}``."""
        return cls(**_from_dict(cls, data, "selection", SELECTIONS))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def value(self) -> float:
        """The method's parameter (k, r or t)."""
        return getattr(self, SELECTIONS[self.method].params[0])

    @property
    def label(self) -> str:
        """E.g. "top-r 0.8" (the paper's words)."""
        return f"{self.method} {self.value:g}"

    def kept_count(self, n_total: int) -> int | None:
        """How many of ``n_total`` samples it keeps (None for a threshold, which depends on the scores)."""
        from .selection import top_count

        return None if self.method == "threshold" else top_count(n_total, self.method, self.k, self.ratio)

    def apply(self, frame: pl.DataFrame, score_field: str, higher_is_better: bool) -> pl.DataFrame:
        """The kept rows in corpus order (``higher_is_better`` unless this config sets its own)."""
        from .selection import select

        higher = higher_is_better if self.higher_is_better is None else self.higher_is_better
        return select(
            frame,
            self.method,
            k=self.k,
            ratio=self.ratio,
            threshold=self.threshold,
            score_field=score_field,
            higher_is_better=higher,
        )


@dataclass(frozen=True)
class OrderConfig:
    """An ordering (paper section 4) with its knobs, and an optional display label.

    ``layers`` is read by folding/zigzag, ``descending`` by the score-based orderings, ``window`` (local
    shuffle on top, beyond the paper) by every one. The seed is not part of it: a comparison trains
    each ordering with each of its seeds.
    """

    method: str
    layers: int = 3
    descending: bool = False
    window: int | None = None
    label: str | None = None

    def __post_init__(self):
        from .ordering import check_order_config

        check_order_config(self.method, self.layers, self.window, 0)
        if not isinstance(self.descending, bool):
            raise ConfigError(f"ordering descending={self.descending!r} must be true or false")
        if self.label is not None and (not isinstance(self.label, str) or not self.label.strip()):
            raise ConfigError(f"ordering label={self.label!r} must be a non-empty string")

    @classmethod
    def from_dict(cls, data: Any) -> OrderConfig:
        """From the spec format: ``"shuffle"`` or ``{"method": "folding", "layers": 3}``."""
        return cls(**_from_dict(cls, data, "ordering", ORDERINGS))

    def to_dict(self) -> dict:
        """The spec format with only what differs from the defaults (as specs are usually written)."""
        out: dict = {"method": self.method}
        if self.method in LAYERED:
            out["layers"] = self.layers
        if self.descending:
            out["descending"] = True
        if self.window:
            out["window"] = self.window
        if self.label:
            out["label"] = self.label
        return out

    @property
    def name(self) -> str:
        """The label, else a short description: "shuffle", "sorting desc", "folding L=3", "... w=64"."""
        if self.label:
            return self.label
        name = self.method
        if self.method in LAYERED:
            name += f" L={self.layers}"
        if self.method != "shuffle" and self.descending:
            name += " desc"
        if self.window:
            name += f" w={self.window}"
        return name

    @property
    def per_seed(self) -> bool:
        """Whether the order changes with the seed (shuffle, or any window shuffle)."""
        return ORDERINGS[self.method].per_seed or bool(self.window and self.window > 1)

    def apply(self, frame: pl.DataFrame, seed: int, score_field: str = "score") -> pl.DataFrame:
        """``frame`` in this training order (``ordering.order``)."""
        from .ordering import order

        return order(
            frame,
            self.method,
            layers=self.layers,
            descending=self.descending,
            window=self.window,
            seed=seed,
            score_field=score_field,
        )

    def layout(self, frame: pl.DataFrame, seed: int, score_field: str = "score"):
        """The plot description of this order (``ordering.layout``)."""
        from .ordering import layout

        return layout(
            frame,
            self.method,
            layers=self.layers,
            descending=self.descending,
            window=self.window,
            seed=seed,
            score_field=score_field,
        )
