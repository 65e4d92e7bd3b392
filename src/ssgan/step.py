"""One training step: a D update on labeled, unlabeled and generated images, then a G update.

Kept apart from the loop (train.py) so the benchmarks time exactly what training runs, and tests
can compare it with a plainly written step.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import AveragedModel

from .algorithms import Algorithm
from .config import Config


@contextlib.contextmanager
def frozen_bn_stats(module: nn.Module):
    """Normalise with batch statistics but leave running statistics alone (momentum 0).

    Generated batches pass through D in train mode; letting them into BN's running statistics
    would make evaluation (which uses those statistics) depend on the generator's samples.
    """
    bns = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


class DiscriminatorPass(nn.Module):
    """D on the real batch and the generated batch in one call: (logits_real, logits_fake).

    One forward per backward is what DDP needs. Nets without batch norm get one concatenated
    batch (faster, same result); with batch norm, real and generated images are normalised
    separately and only real images update the running statistics.
    """

    def __init__(self, D: nn.Module):
        super().__init__()
        self.D = D
        self.has_bn = any(isinstance(m, _BatchNorm) for m in D.modules())

    def forward(self, x_real: torch.Tensor, x_fake: torch.Tensor | None = None):
        if x_fake is None:
            return self.D(x_real)[0], None
        if not self.has_bn:
            logits, _ = self.D(torch.cat([x_real, x_fake]))
            return logits[:len(x_real)], logits[len(x_real):]
        logits_real, _ = self.D(x_real)
        with frozen_bn_stats(self.D):
            logits_fake, _ = self.D(x_fake)
        return logits_real, logits_fake


def make_adam(params: list[torch.Tensor], lr: float, cfg: Config, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one (CPU, CUDA): one pass over all parameters."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps,
                            fused=fused, foreach=None if fused else True)


def set_requires_grad(params, flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


@dataclass
class StepParts:
    """What one training step touches. `d_pass` and `G_fwd` are DDP-wrapped when distributed."""
    algo: Algorithm
    D: nn.Module
    G: nn.Module | None
    d_pass: nn.Module        # DiscriminatorPass(D), possibly DDP-wrapped
    G_fwd: nn.Module | None  # G, possibly DDP-wrapped
    opt_d: torch.optim.Optimizer
    opt_g: torch.optim.Optimizer | None
    d_params: list[torch.Tensor]
    ema: AveragedModel | None
    amp: bool
    device: torch.device
    batch_size: int
    g_steps: int = 1


def train_step(p: StepParts, x_lab: torch.Tensor, y_lab: torch.Tensor, x_unl: torch.Tensor | None,
               x_unl_g: torch.Tensor | None) -> list[torch.Tensor]:
    """One D update, then one G update; returns the loss terms (D terms, d_loss, G terms, g_loss)."""
    algo, D, G = p.algo, p.D, p.G
    autocast = torch.autocast(p.device.type, dtype=torch.bfloat16, enabled=p.amp)

    # ---- D step: labeled -> their class, unlabeled -> real, generated -> fake
    if G is not None:
        with autocast:
            with torch.no_grad():  # no graph through G here (and DDP expects no backward for this call)
                x_fake = p.G_fwd(G.sample_z(p.batch_size, p.device))                   # (B, C, H, W)
            logits_real, logits_fake = p.d_pass(torch.cat([x_lab, x_unl]), x_fake)
        logits_lab, logits_unl = logits_real.float().split([len(x_lab), len(x_unl)])
        d_loss, d_terms = algo.d_loss(logits_lab, y_lab, logits_unl, logits_fake.float())
    else:
        with autocast:
            logits_lab, _ = p.d_pass(x_lab)
        d_loss, d_terms = algo.d_loss(logits_lab.float(), y_lab, None, None)
    p.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    p.opt_d.step()
    if p.ema:
        p.ema.update_parameters(D)
    row = [d_terms[n] for n in algo.d_terms] + [d_loss]
    if G is None:
        return row

    # ---- G step(s): a fresh generated batch each, as in Salimans et al.'s code. D does not change
    # between them, so the real-feature target is computed once (and its batch enters BN stats once).
    set_requires_grad(p.d_params, False)  # G's loss needs no gradients of D's weights
    feat_real = None
    for _ in range(p.g_steps):
        with autocast:
            x_fake = p.G_fwd(G.sample_z(p.batch_size, p.device))
            if feat_real is None:
                with torch.no_grad():
                    _, feat_real = D(x_unl_g)
            with frozen_bn_stats(D):
                logits_fake, feat_fake = D(x_fake)
        g_loss, g_terms = algo.g_loss(logits_fake.float(), feat_real.float(), feat_fake.float())
        p.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        p.opt_g.step()
    set_requires_grad(p.d_params, True)
    return row + [g_terms[n] for n in algo.g_terms] + [g_loss]
