"""Scorer agreement: rank correlation and top-k overlap between the score columns of one table."""

from __future__ import annotations

import numpy as np
import polars as pl


def spearman_matrix(table: pl.DataFrame, methods: list[str]) -> np.ndarray:
    """Spearman rank correlation between every pair of score columns (rows with all scores finite).

    Ties get average ranks, so the result equals Pearson correlation of the ranks (the textbook
    definition); a constant column gives NaN against everything.
    """
    clean = table.select(methods).drop_nulls()
    clean = clean.filter(pl.all_horizontal([pl.col(m).cast(pl.Float64).is_finite() for m in methods]))
    ranks = (
        np.column_stack([clean[m].rank("average").to_numpy().astype(float) for m in methods])
        if clean.height
        else np.zeros((0, len(methods)))
    )
    out = np.full((len(methods), len(methods)), np.nan)
    for i in range(len(methods)):
        for j in range(len(methods)):
            a, b = ranks[:, i], ranks[:, j]
            if len(a) > 1 and a.std() > 0 and b.std() > 0:
                out[i, j] = float(np.corrcoef(a, b)[0, 1])
    return out


def top_ids(table: pl.DataFrame, method: str, k: int) -> set[str]:
    """Ids of the ``k`` highest scores of ``method`` (ties broken by id for determinism)."""
    ranked = table.select("id", method).drop_nulls().sort([method, "id"], descending=[True, False])
    return set(ranked["id"].head(k).to_list())


def jaccard_matrix(table: pl.DataFrame, methods: list[str], k: int) -> np.ndarray:
    """Top-k overlap |A ∩ B| / |A ∪ B| between the top-k sets of every pair of methods."""
    sets = [top_ids(table, m, k) for m in methods]
    out = np.full((len(methods), len(methods)), np.nan)
    for i, a in enumerate(sets):
        for j, b in enumerate(sets):
            union = a | b
            out[i, j] = len(a & b) / len(union) if union else np.nan
    return out
