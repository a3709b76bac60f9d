"""Language-model losses with padding masked out (delt-method.md section 2: l(x, theta))."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_losses(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy per position [N, L-1] and the mask of positions that count.

    A position counts when both the input token and the predicted token are real (not padding).
    """
    shift_logits = logits[:, :-1, :].float()
    targets = input_ids[:, 1:]
    mask = attention_mask[:, 1:].to(shift_logits.dtype)
    losses = (
        F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), targets.reshape(-1), reduction="none")
        .view_as(targets)
        .to(shift_logits.dtype)
    )
    return losses * mask, mask


def sample_losses_from_logits(logits, input_ids, attention_mask) -> torch.Tensor:
    """Mean next-token loss of each sample over its own real tokens, shape [N]."""
    losses, mask = token_losses(logits, input_ids, attention_mask)
    return losses.sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def sample_losses(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean LM loss under ``model`` (no attention mask needed: right padding + causal)."""
    logits = model(input_ids=input_ids).logits
    return sample_losses_from_logits(logits, input_ids, attention_mask)


def batch_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample losses: the batch loss L_t whose gradient is the mean of sample gradients."""
    return sample_losses(model, input_ids, attention_mask).mean()


def token_mean_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean loss over all real tokens of the batch (the usual pretraining objective)."""
    total, count = token_loss_sum(model, input_ids, attention_mask)
    return total / count.clamp_min(1.0)


def token_loss_sum(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss over the real predicted tokens of the batch, and their number (parts of a batch add up)."""
    logits = model(input_ids=input_ids).logits
    losses, mask = token_losses(logits, input_ids, attention_mask)
    return losses.sum(), mask.sum()
