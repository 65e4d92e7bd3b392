"""Dropout with a cheaper mask on the CPU.

`nn.Dropout` draws its mask with `bernoulli_`, which on the CPU costs about one RNG call per
element: a quarter of the K+1 DCGAN's training step on MNIST (a profile of dcgan28 at width 0.25,
one thread). Here one 64-bit draw gives the coins of four elements: each 16-bit quarter is compared
with the keep probability quantised to 1/65536 (0.7 becomes 0.69999695), so every element is still
kept independently with the asked probability to within 2e-5, and the survivors are scaled by the
inverse of that quantised probability, which keeps the expectation exact. Same seed, same masks. On
other devices, in evaluation and for p of 0 or 1 it is `nn.Dropout` itself.

`inplace=True` overwrites its input, the same products written in place (the same numbers). The
nets use it only right after a batch norm, whose backward needs its input, not its output. It
saves one allocation and one write of the layer's output per step; not memory kept for the
backward (nothing keeps batch norm's output: dropout's backward needs only the mask).

The mask is applied by setting the dropped elements to 0 (`masked_fill_`, or `where` out of
place), not by multiplying by the boolean mask: a float-by-bool multiply first copies the mask into
a float tensor, forward and backward, a full-size copy per layer and pass
(`benchmarks/dropout_ab.py` times both forms). The values are the same, and so is the training
(tested): only a dropped element's zero is +0 where the product gave -0 for a negative input. The
backward is written out (`_DropThenScale`) so that the gradient keeps its channels-last layout.

`LeakyReLUDropout` is LeakyReLU then this dropout in one autograd node, for D's first layer, where
there is no batch norm between them: unfused, LeakyReLU keeps its output and the next layer keeps
dropout's, two copies of the largest activation (200 MB at the recipe's 64x64). Fused, only the
output is kept (the next layer keeps it anyway) and the mask. The same operations in the same
order, forward and backward, so the same numbers (tests/test_dropout.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def drop_mask(x: torch.Tensor, keep: float) -> tuple[torch.Tensor, float]:
    """A boolean mask shaped and laid out like `x` (contiguous or channels-last), each element True
    (dropped) with probability 1 - `keep`, `keep` quantised to 1/65536; returns (mask, that `keep`)."""
    n = x.numel()
    bits = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
    coins = bits.view(torch.int16)[:n].as_strided(x.shape, x.stride())   # uniform on [-32768, 32767]
    threshold = round(keep * 65536)
    return coins >= threshold - 32768, threshold / 65536


def keep_mask(x: torch.Tensor, keep: float) -> tuple[torch.Tensor, float]:
    """`drop_mask`'s complement from the same draws: True where an element is kept."""
    drop, keep = drop_mask(x, keep)
    return ~drop, keep


class _DropThenScale(torch.autograd.Function):
    """y = x with the dropped elements 0, times scale (in place with `inplace`); keeps the mask.

    Autograd's own backward of `masked_fill` returns a contiguous gradient for a channels-last input,
    which sends the layer below (a batch norm) down another kernel, with other rounding. This one
    keeps the incoming gradient's layout."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, drop: torch.Tensor, scale: float, inplace: bool) -> torch.Tensor:
        if inplace:
            ctx.mark_dirty(x)
            y = x.masked_fill_(drop, 0)
        else:
            y = torch.where(drop, 0.0, x)  # keeps x's layout (out of place, `masked_fill` makes it contiguous)
        ctx.save_for_backward(drop)
        ctx.scale = scale
        return y.mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (drop,) = ctx.saved_tensors
        return grad.mul(ctx.scale).masked_fill_(drop, 0), None, None, None  # the scale's backward, then the mask's


class Dropout(nn.Dropout):
    def cheap_mask_applies(self, x: torch.Tensor) -> bool:
        """Training on the CPU, 0 < p < 1, and a layout drop_mask can mirror; else nn.Dropout's own."""
        return self.training and 0 < self.p < 1 and x.device.type == "cpu" and (
            x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cheap_mask_applies(x):
            return super().forward(x)
        drop, keep = drop_mask(x, 1 - self.p)
        return _DropThenScale.apply(x, drop, 1 / keep, self.inplace)


class _LeakyReLUThenDropout(torch.autograd.Function):
    """y = leaky_relu(x), dropped elements 0, times scale; keeps only y (shared with the next layer)
    and the drop mask."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float, drop: torch.Tensor, scale: float) -> torch.Tensor:
        y = torch.nn.functional.leaky_relu(x, slope).masked_fill_(drop, 0).mul_(scale)
        ctx.save_for_backward(y, drop)
        ctx.slope, ctx.scale = slope, scale
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y, drop = ctx.saved_tensors
        g = grad.mul(ctx.scale).masked_fill_(drop, 0)  # the unfused graph's order: the scale's backward, then the mask's
        # LeakyReLU's backward from its output (as an in-place LeakyReLU's is): y > 0 exactly where its
        # output was (a dropped element's gradient is already 0 on either side)
        return torch.ops.aten.leaky_relu_backward(g, y, ctx.slope, True), None, None, None


class LeakyReLUDropout(Dropout):
    """LeakyReLU(slope) then Dropout(p), fused in training on the CPU (see the module's docstring)."""

    def __init__(self, p: float, slope: float = 0.2):
        super().__init__(p)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cheap_mask_applies(x):
            return super().forward(torch.nn.functional.leaky_relu(x, self.slope))
        drop, keep = drop_mask(x, 1 - self.p)
        return _LeakyReLUThenDropout.apply(x, self.slope, drop, 1 / keep)

    def extra_repr(self) -> str:
        return f"slope={self.slope}, {super().extra_repr()}"
