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

`LeakyReLUDropout` is LeakyReLU then this dropout in one autograd node, for D's first layer, where
there is no batch norm between them: unfused, LeakyReLU keeps its output and the next layer keeps
dropout's, two copies of the largest activation (200 MB at the recipe's 64x64). Fused, only the
output is kept (the next layer keeps it anyway) and the mask. The same operations in the same
order, forward and backward, so the same numbers (tests/test_dropout.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def keep_mask(x: torch.Tensor, keep: float) -> tuple[torch.Tensor, float]:
    """A boolean mask shaped and laid out like `x` (contiguous or channels-last), each element True
    with probability `keep` quantised to 1/65536; returns (mask, that probability)."""
    n = x.numel()
    bits = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
    coins = bits.view(torch.int16)[:n].as_strided(x.shape, x.stride())   # uniform on [-32768, 32767]
    threshold = round(keep * 65536)
    return coins < threshold - 32768, threshold / 65536


class Dropout(nn.Dropout):
    def cheap_mask_applies(self, x: torch.Tensor) -> bool:
        """Training on the CPU, 0 < p < 1, and a layout keep_mask can mirror; else nn.Dropout's own."""
        return self.training and 0 < self.p < 1 and x.device.type == "cpu" and (
            x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cheap_mask_applies(x):
            return super().forward(x)
        mask, keep = keep_mask(x, 1 - self.p)
        out = x.mul_(mask) if self.inplace else x.mul(mask)  # the bool mask promotes inside the kernel; backward saves it
        return out.mul_(1 / keep)


class _LeakyReLUThenDropout(torch.autograd.Function):
    """y = leaky_relu(x) * mask * scale, keeping only y (shared with the next layer) and the mask."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float, mask: torch.Tensor, scale: float) -> torch.Tensor:
        y = torch.nn.functional.leaky_relu(x, slope).mul_(mask).mul_(scale)
        ctx.save_for_backward(y, mask)
        ctx.slope, ctx.scale = slope, scale
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y, mask = ctx.saved_tensors
        g = grad.mul(ctx.scale).mul_(mask)  # the unfused graph's order: the scale's backward, then the mask's
        # LeakyReLU's backward from its output: y > 0 exactly where its output was (a dropped element's
        # gradient is already 0 on either side)
        return torch.where(y > 0, g, g * ctx.slope), None, None, None


class LeakyReLUDropout(Dropout):
    """LeakyReLU(slope) then Dropout(p), fused in training on the CPU (see the module's docstring)."""

    def __init__(self, p: float, slope: float = 0.2):
        super().__init__(p)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cheap_mask_applies(x):
            return super().forward(torch.nn.functional.leaky_relu(x, self.slope))
        mask, keep = keep_mask(x, 1 - self.p)
        return _LeakyReLUThenDropout.apply(x, self.slope, mask, 1 / keep)

    def extra_repr(self) -> str:
        return f"slope={self.slope}, {super().extra_repr()}"
