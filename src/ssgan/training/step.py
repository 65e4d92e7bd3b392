"""One training step: `d_step` (labeled, unlabeled and generated images), then `g_step`.

Kept apart from the loop (loop.py) so the benchmarks time exactly what training runs, and tests
can compare it with a plainly written step. `make_step_parts` is the one place the step's parts
(optimisers, DDP wrappers) are put together: training, tests and benchmarks all call it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel

from ..algorithms import Algorithm
from ..config import Config, OptimConfig
from ..errors import ConfigError
from .adam import Adam


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


def make_adam(params: list[torch.Tensor], lr: float, o: OptimConfig, device: torch.device,
              beta1: float | None = None) -> Adam | torch.optim.Adam:
    """Adam with the fused kernel where torch has one (CPU, CUDA): one pass over all parameters,
    through ssgan's Adam (adam.py: torch.optim costs 150 MB of memory); elsewhere torch.optim's.
    `beta1` overrides `o.beta1` (G's own, `optim.g_beta1`)."""
    betas = (o.beta1 if beta1 is None else beta1, o.beta2)
    if device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adam_"):  # (a torch without the kernel: torch.optim)
        return Adam(params, lr=lr, betas=betas, eps=o.eps)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=o.eps, foreach=True)


def set_requires_grad(params, flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


@dataclass(kw_only=True)
class StepParts:
    """What one training step touches. Build it with `make_step_parts`."""
    algo: Algorithm
    D: nn.Module
    d_pass: nn.Module                 # DiscriminatorPass(D), DDP-wrapped when distributed
    opt_d: Adam | torch.optim.Optimizer
    device: torch.device
    batch_size: int                   # per process
    G: nn.Module | None = None        # None: a method without a generator
    G_fwd: nn.Module | None = None    # G, DDP-wrapped when distributed
    opt_g: Adam | torch.optim.Optimizer | None = None
    ema: AveragedModel | None = None  # updated after every D step
    teacher: nn.Module | None = None  # method.teacher=ema: the EMA's module gives the consistency term's second view
    amp: bool = False                 # bf16 autocast
    g_steps: int = 1
    d_params: list[torch.Tensor] = field(init=False)

    def __post_init__(self):
        self.d_params = [p for p in self.D.parameters() if p.requires_grad]


def make_step_parts(cfg: Config, algo: Algorithm, D: nn.Module, G: nn.Module | None, device: torch.device, *,
                    ema: AveragedModel | None = None, distributed: bool = False,
                    optimizer: Callable[[list, float], torch.optim.Optimizer] | None = None) -> StepParts:
    """Optimisers (Adam per `cfg.optim` unless `optimizer(params, lr)` is given) and, with several
    processes, DDP around D's pass and G."""
    make_d = optimizer or (lambda params, lr: make_adam(params, lr, cfg.optim, device))
    make_g = optimizer or (lambda params, lr: make_adam(params, lr, cfg.optim, device, beta1=cfg.optim.g_beta1))
    trainable = lambda net: [p for p in net.parameters() if p.requires_grad]  # noqa: E731
    wrap = (lambda m: DDP(m, device_ids=[device.index] if device.type == "cuda" else None)) if distributed \
        else (lambda m: m)
    teacher = None
    if cfg.method.teacher == "ema" and algo.unl_views == 2:
        if ema is None:
            raise ConfigError("method.teacher=ema needs the EMA of D (train.ema), and none was given")
        teacher = ema.module
    parts = StepParts(algo=algo, D=D, d_pass=wrap(DiscriminatorPass(D)), opt_d=make_d(trainable(D), cfg.optim.lr),
                      device=device, batch_size=cfg.train.batch_size, ema=ema, teacher=teacher,
                      amp=cfg.train.amp == "bf16", g_steps=cfg.optim.g_steps)
    if G is not None:
        parts.G, parts.G_fwd = G, wrap(G)
        parts.opt_g = make_g(trainable(G), cfg.optim.g_lr or cfg.optim.lr)
    return parts


def _float(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.float()


def teacher_logits(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean teacher's view of `x`: the EMA of D in training mode, so with its own dropout, noise
    and augmentation, as Tarvainen & Valpola's teacher; no gradients, and its batch norm normalises
    with the batch's statistics without touching the running statistics evaluation uses."""
    was = teacher.training
    teacher.train()
    try:
        with torch.no_grad(), frozen_bn_stats(teacher):
            return teacher(x)[0]
    finally:
        teacher.train(was)


def d_step(p: StepParts, x_lab: torch.Tensor, y_lab: torch.Tensor, x_unl: torch.Tensor | None = None
           ) -> list[torch.Tensor]:
    """One D update: labeled images -> their class, unlabeled -> real, generated -> fake.

    Without `x_unl` (a method without a generator) D sees the labeled images alone.
    Returns the D loss terms in `algo.d_terms` order, then d_loss.
    """
    with torch.autocast(p.device.type, dtype=torch.bfloat16, enabled=p.amp):
        if x_unl is None:
            (logits_lab, _), logits_unl, logits_fake = p.d_pass(x_lab), None, None
        else:
            with torch.no_grad():  # no graph through G here (and DDP expects no backward for this call)
                x_fake = p.G_fwd(p.G.sample_z(p.batch_size, p.device))               # (B, C, H, W)
            # a method with a consistency term sees x_unl twice, with fresh noise: both passes through D
            # (the Pi-model), or the second through the EMA teacher, without gradients (the mean teacher)
            views = 1 if p.teacher is not None else p.algo.unl_views
            logits_real, logits_fake = p.d_pass(torch.cat([x_lab] + [x_unl] * views), x_fake)
            logits_lab, logits_unl = logits_real.split([len(x_lab), views * len(x_unl)])  # (B, K), (vB, K)
            if p.teacher is not None:
                logits_unl = torch.cat([logits_unl, teacher_logits(p.teacher, x_unl)])       # (2B, K)
    d_loss, terms = p.algo.d_loss(logits_lab.float(), y_lab, _float(logits_unl), _float(logits_fake))
    p.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    p.opt_d.step()
    if p.ema is not None:
        p.ema.update_parameters(p.D)
    return [terms[n] for n in p.algo.d_terms] + [d_loss]


def g_step(p: StepParts, x_unl: torch.Tensor) -> list[torch.Tensor]:
    """`g_steps` G updates, each on a fresh generated batch, as in Salimans et al.'s code.

    D does not change between them, so the real-feature target (of `x_unl`) is computed once and
    its batch enters BN statistics once. Returns the G loss terms in `algo.g_terms` order, then g_loss.
    """
    set_requires_grad(p.d_params, False)  # G's loss needs no gradients of D's weights
    feat_real = None
    for _ in range(p.g_steps):
        with torch.autocast(p.device.type, dtype=torch.bfloat16, enabled=p.amp):
            x_fake = p.G_fwd(p.G.sample_z(p.batch_size, p.device))
            if feat_real is None:
                with torch.no_grad():
                    _, feat_real = p.D(x_unl)                                          # (B, F)
            with frozen_bn_stats(p.D):
                logits_fake, feat_fake = p.D(x_fake)
        g_loss, terms = p.algo.g_loss(logits_fake.float(), feat_real.float(), feat_fake.float())
        p.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        p.opt_g.step()
    set_requires_grad(p.d_params, True)
    return [terms[n] for n in p.algo.g_terms] + [g_loss]
