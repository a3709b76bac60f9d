"""Distilled LQS for corpora too large to score exactly (delt-method.md section 2, "the scale path").

Exact LQS (or PDS) on a seeded proxy subset trains a small regressor: the warmed-up proxy LM as
encoder, mean-pooled last hidden states over real tokens, a linear head, MSE against the z-scored
labels clipped to [-3, 3]; the epoch with the best validation Spearman is kept. The regressor
then scores every sample of the corpus, the exactly scored ones included, and its predictions are
mapped back to the label scale (``mean + std * z``): the score of a distilled corpus is one scorer's
output throughout. Keeping the exact subset's raw scores instead would mix two scales (raw exact
scores spread wider than the shrunk predictions), so exact samples would crowd both tails and be
kept or sorted first; the raw scores stay in their own column (``exact_score``) for inspection.
Rank statistics (Spearman, AUROC) are implemented here with numpy.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import polars as pl
import torch

from ..errors import ConfigError
from ..progress import PhaseTimer, ProgressFn, StopFn, check_stop

MIN_PROXY = 4  # at least one validation and a few training samples


def rankdata(x) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank (as scipy.stats.rankdata)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):  # walk runs of equal values
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN if either is constant."""
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def auroc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` for the positive ``labels`` (Mann-Whitney U / (n+ n-)).

    Equals P(score of a random positive > score of a random negative) + 0.5 P(tie).
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


class Regressor(torch.nn.Module):
    """Causal-LM encoder, mean pooling over real tokens, linear head -> one number per sample."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        # made on the CPU (seeded by the CPU generator, see train_regressor), then moved to the LM's device
        self.head = torch.nn.Linear(lm.config.hidden_size, 1, dtype=next(lm.parameters()).dtype).to(
            next(lm.parameters()).device
        )

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.lm.base_model(input_ids=ids).last_hidden_state
        weight = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1.0)
        return self.head(pooled).squeeze(-1)


def _predict(
    reg: Regressor,
    samples,
    positions: np.ndarray,
    batch_size: int,
    device,
    timer: PhaseTimer | None = None,
    should_stop: StopFn = None,
) -> np.ndarray:
    from ..data.tokenizer import trim_batch

    out = np.zeros(len(positions))
    lengths = samples.lengths[torch.as_tensor(positions, dtype=torch.long)]
    order = torch.argsort(lengths, descending=True, stable=True).numpy()
    reg.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            check_stop(should_stop)
            rows = order[start : start + batch_size]
            idx = torch.as_tensor(positions[rows], dtype=torch.long)
            ids, mask = trim_batch(samples.input_ids[idx], samples.attention_mask[idx])
            out[rows] = reg(ids.to(device), mask.to(device)).double().cpu().numpy()
            if timer is not None:
                timer.update(start + len(rows))
    return out


def train_regressor(
    lm,
    samples,
    positions: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    val_fraction: float,
    seed: int,
    on_progress: ProgressFn = None,
    should_stop: StopFn = None,
) -> tuple[Regressor, dict[str, Any]]:
    """Fit a Regressor on (samples at ``positions``, z-scored clipped ``labels``); keep the best epoch.

    Returns:
        (the regressor at its best validation Spearman, facts: mean, std, val_spearman, best_epoch, ...).
    """
    from ..data.tokenizer import trim_batch

    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(positions))
    n_val = max(1, int(round(val_fraction * len(positions))))
    val, train = perm[:n_val], perm[n_val:]
    mean, std = float(labels[train].mean()), float(labels[train].std())
    std = std if std > 0 else 1.0
    z = torch.as_tensor(np.clip((labels - mean) / std, -3.0, 3.0))
    with torch.random.fork_rng(devices=[]):  # the head's init from ``seed``, not from what ran before
        torch.manual_seed(seed)
        reg = Regressor(copy.deepcopy(lm))
    device = next(reg.parameters()).device
    optimizer = torch.optim.AdamW(reg.parameters(), lr=lr, weight_decay=0.01)
    per_epoch = -(-len(train) // batch_size)
    timer = PhaseTimer("distill", epochs * per_epoch, on_progress)
    best, history, done = (-np.inf, -1, None), [], 0
    for epoch in range(epochs):
        reg.train()
        order = train[rng.permutation(len(train))]
        for start in range(0, len(order), batch_size):
            check_stop(should_stop)
            rows = order[start : start + batch_size]
            idx = torch.as_tensor(positions[rows], dtype=torch.long)
            ids, mask = trim_batch(samples.input_ids[idx], samples.attention_mask[idx])
            pred = reg(ids.to(device), mask.to(device))
            loss = torch.nn.functional.mse_loss(pred, z[rows].to(device=device, dtype=pred.dtype))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            timer.update(done, message=f"epoch {epoch + 1} mse {float(loss.detach()):.3f}")
        rho = spearman(_predict(reg, samples, positions[val], batch_size, device), labels[val])
        history.append(rho)
        if np.isfinite(rho) and rho > best[0] or best[2] is None:
            best = (rho, epoch, copy.deepcopy(reg.state_dict()))
    reg.load_state_dict(best[2])
    facts = {
        "val_spearman": float(best[0]),
        "best_epoch": best[1] + 1,
        "val_spearman_by_epoch": history,
        "n_train": int(len(train)),
        "n_val": int(n_val),
        "label_mean": mean,
        "label_std": std,
    }
    return reg, facts


def distill_scores(
    exact, table: pl.DataFrame, method: str, cfg, on_progress: ProgressFn = None, should_stop: StopFn = None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every corpus sample scored by a regressor trained on the exact rows of ``table``, in corpus order.

    Args:
        exact: lqs.ExactLQS (samples of the whole corpus, positions of the exact rows, the proxy LM).
        table: the exact scores table (``lqs.exact_table``), rows in ``exact.parts.positions`` order.
        method: "lqs" or "pds": the column that is distilled (and becomes ``score``).
        cfg: LQSConfig (distill_epochs, distill_lr, distill_val_fraction, batch_size, seed).

    Returns:
        (table, distillation facts). In the table ``score`` and the ``method`` column are the regressor's
        prediction for every sample; ``exact_score`` holds the exact (raw) ``method`` score of the exactly
        scored samples (null for the others), whose other components (the other method, quality,
        learnability, per-step lists) stay as computed; ``exact``/``source`` mark the two kinds; a
        constant ``distill_val_spearman`` column holds the regressor's validation Spearman. The facts
        add ``exact_spearman``: Spearman of prediction and exact score over the exact subset (mostly
        the regressor's own training samples, so it flatters; ``val_spearman`` is the honest figure).
    """
    positions = np.asarray(exact.parts.positions)
    if len(positions) < MIN_PROXY:
        raise ConfigError(
            f"distill needs proxy_size >= {MIN_PROXY} (train and validation samples); got {len(positions)}"
        )
    labels = table[method].to_numpy().astype(np.float64)
    reg, facts = train_regressor(
        exact.flm.model,
        exact.samples,
        positions,
        labels,
        epochs=cfg.distill_epochs,
        lr=cfg.distill_lr,
        batch_size=cfg.batch_size,
        val_fraction=cfg.distill_val_fraction,
        seed=cfg.seed,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    everything = np.arange(len(exact.samples))
    timer = PhaseTimer("distill-score", len(everything), on_progress)
    z = _predict(reg, exact.samples, everything, cfg.batch_size, next(reg.parameters()).device, timer, should_stop)
    predicted = facts["label_mean"] + facts["label_std"] * z
    facts["exact_spearman"] = spearman(predicted[positions], labels)
    rest = np.setdiff1d(everything, positions)
    distilled = pl.DataFrame(
        {
            "id": pl.Series([exact.samples.ids[p] for p in rest], dtype=pl.Utf8),
            "exact": pl.Series([False] * len(rest), dtype=pl.Boolean),
            "source": pl.Series(["distilled"] * len(rest), dtype=pl.Utf8),
        }
    )
    kept = table.with_columns(pl.col(method).alias("exact_score"))
    merged = pl.concat([kept, distilled], how="diagonal_relaxed")
    order = np.argsort(np.concatenate([positions, rest]), kind="stable")
    merged = merged[order.tolist()]  # corpus order, as ``predicted``
    return merged.with_columns(
        pl.Series("score", predicted, dtype=pl.Float64),
        pl.Series(method, predicted, dtype=pl.Float64),
        pl.lit(facts["val_spearman"], dtype=pl.Float64).alias("distill_val_spearman"),
    ), facts
