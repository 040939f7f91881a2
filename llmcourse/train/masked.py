"""Means and sums over the positions a mask selects: the reductions every RL loss ends with.

A batch of responses is a ``(batch, seq)`` grid in which only some positions are response
tokens (``mask`` = 1); the prompt and the padding after a response must not count. Two
reductions, over one dimension or over all of them:

    masked_mean(x, m, dim)          = Σ_dim x·m / Σ_dim m
    masked_normalize(x, m, dim, C)  = Σ_dim x·m / C

``masked_mean`` over ``dim=-1`` is a per-sequence mean (GRPO as DeepSeekMath wrote it, Shao et
al. 2024); over everything, a per-token mean (DAPO, Yu et al. 2025); ``masked_normalize`` with
a constant C (the longest allowed response) is Dr. GRPO's fix for the length bias of the
per-sequence mean (Liu et al. 2025). Where the mask selects nothing the mean is 0, not NaN.
"""

from __future__ import annotations

import torch


def _check(x: torch.Tensor, mask: torch.Tensor | None) -> None:
    if mask is None:
        return
    try:
        torch.broadcast_shapes(x.shape, mask.shape)
    except RuntimeError:
        raise ValueError(
            f"mask {tuple(mask.shape)} does not broadcast to the values {tuple(x.shape)}; give "
            "one mask entry per value (1: counts, 0: ignored)."
        ) from None


def _check_dim(x: torch.Tensor, dim: int | None) -> None:
    if dim is None:
        return
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int or None, got {type(dim).__name__} {dim!r}.")
    if not -x.dim() <= dim < max(x.dim(), 1):
        raise ValueError(
            f"dim={dim} is out of range for values of shape {tuple(x.shape)}: use "
            f"{-x.dim()} … {x.dim() - 1}, or None for every dimension."
        )


def masked_mean(
    x: torch.Tensor, mask: torch.Tensor | None = None, dim: int | None = None
) -> torch.Tensor:
    """Mean of ``x`` where ``mask`` is 1, over ``dim`` (every dimension when None).

    ``mask`` broadcasts to ``x`` (None: a plain mean). A slice with no selected entry gives 0.

    >>> x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> m = torch.tensor([[1, 1, 0], [0, 0, 0]])
    >>> masked_mean(x, m).item(), masked_mean(x, m, dim=-1).tolist()
    (1.5, [1.5, 0.0])
    """
    _check_dim(x, dim)
    if mask is None:
        return x.mean() if dim is None else x.mean(dim)
    _check(x, mask)
    mask = mask.to(x.dtype).expand_as(x) if mask.shape != x.shape else mask.to(x.dtype)
    total = (x * mask).sum() if dim is None else (x * mask).sum(dim)
    count = mask.sum() if dim is None else mask.sum(dim)
    # Divide by 1 where nothing is selected (the sum is 0 there): 0, and no NaN gradient.
    return total / torch.where(count > 0, count, torch.ones_like(count))


def masked_normalize(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    dim: int | None = None,
    constant: float = 1.0,
) -> torch.Tensor:
    """Sum of ``x`` where ``mask`` is 1, over ``dim`` (all when None), divided by ``constant``.

    >>> x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> masked_normalize(x, torch.tensor([[1, 1, 0], [1, 0, 0]]), dim=-1, constant=4.0).tolist()
    [0.75, 1.0]
    """
    if not 0 < constant < float("inf"):  # also refuses NaN
        raise ValueError(f"constant must be positive and finite, got {constant}.")
    _check_dim(x, dim)
    _check(x, mask)
    masked = x if mask is None else x * mask.to(x.dtype)
    return (masked.sum() if dim is None else masked.sum(dim)) / constant
