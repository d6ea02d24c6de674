"""Maxout for training, fast on the CPU: the GEMM's columns reordered so that each piece is a
contiguous block of units, then the max over pieces as elementwise maxima, with a backward
that routes the gradient to the winning piece (the first one at a tie, as the cupy kernel and
torch.max do). torch's own max(dim) over the interleaved pieces reduces along a short inner
dimension and takes 5-10× longer, and amax's backward (which splits ties) longer still."""

from __future__ import annotations

from typing import Callable

import torch


class _MaxOverPieces(torch.autograd.Function):
    """y = max over dim -2 of v (..., P, U); the winner's index kept for the backward."""

    @staticmethod
    def forward(ctx, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        best = v.select(-2, 0)
        arg = torch.zeros(best.shape, dtype=torch.uint8, device=v.device)
        for k in range(1, v.shape[-2]):
            cur = v.select(-2, k)
            arg.masked_fill_(cur > best, k)  # strictly greater: the first piece wins a tie
            best = torch.maximum(best, cur)  # (NaN propagates, as in max)
        ctx.save_for_backward(arg)
        ctx.pieces = v.shape[-2]
        return best

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (arg,) = ctx.saved_tensors
        zero = g.new_zeros(())
        return torch.stack([torch.where(arg == k, g, zero) for k in range(ctx.pieces)], dim=-2)


def maxout_gemm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, units: int, pieces: int,
                gemm: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
                ) -> torch.Tensor:
    """max over pieces of gemm(x, W, b), W (..., in, units·pieces) in the checkpoint's layout
    (unit u's pieces at columns u·P … u·P + P − 1). Each output column is the same dot
    product as in that layout, so the values are the plain maxout's."""
    wp = w.unflatten(-1, (units, pieces)).transpose(-1, -2).flatten(-2)
    bp = b.unflatten(-1, (units, pieces)).transpose(-1, -2).flatten(-2)
    y = gemm(x, wp, bp)
    return _MaxOverPieces.apply(y.unflatten(-1, (pieces, units)))
