"""A run's moving parts in one object: networks, optimisers, schedules, EMA, streams and position.

`build_run` decides once what a method needs (a method without a generator gets no G, no
unlabeled streams and no G optimiser); the loop never asks again. `Run.state_dict` and
`load_state_dict` are the checkpoint layout, and `restore_models` reads it back for inference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..algorithms import Algorithm, build_algorithm
from ..config import Config, from_dict
from ..data.base import SourceData
from ..data.split import Split
from ..data.streams import LabeledStream, UnlabeledStream
from ..errors import CheckpointError, ConfigError
from ..nets import build_nets, settle, to_layout
from .distributed import Dist
from .step import StepParts, make_step_parts


DEFAULT_STEPS = 6000   # train.epochs unset: 10 epochs of MNIST at batch 100
FEW_STEPS = 2000       # below this, say so: in a trial, 800 steps on a small folder gave the SSL methods no gain


def decay_span(decay_epochs: int, epochs: int) -> int:
    """Epochs the linear decay spans: the last `decay_epochs`, or all of them when that is 0 or more
    than the run has."""
    return min(decay_epochs or epochs, epochs)


def lr_factor(cfg: Config, steps_per_epoch: int):
    """Learning-rate multiplier of the k-th step: 1, or a linear decay to 0 over the last epochs."""
    o, epochs = cfg.optim, cfg.train.epochs
    span = decay_span(o.decay_epochs, epochs)

    def factor(k: int) -> float:
        if o.decay == "none":
            return 1.0
        progress = k // steps_per_epoch + (k % steps_per_epoch) / steps_per_epoch  # fractional epoch
        return min(1.0, max(0.0, (epochs - progress) / span))
    return factor


@dataclass
class RateSchedule:
    """Each optimiser's rate at the k-th step: its base rate (the one it was built with) times
    `factor(k)`. The same product torch's LambdaLR computed, done here because LambdaLR takes only
    torch.optim optimisers (adam.py says why ssgan's Adam is not one). The rate is a function of
    the position, so a resumed run seeks to it."""
    optimizers: list
    factor: Callable[[int], float]
    position: int = 0
    bases: list[float] = field(init=False)

    def __post_init__(self):
        self.bases = [opt.param_groups[0]["lr"] for opt in self.optimizers]
        self.seek(self.position)

    def seek(self, k: int) -> None:
        self.position = k
        for opt, base in zip(self.optimizers, self.bases):
            opt.param_groups[0]["lr"] = base * self.factor(k)


def ema_update(decay: float, warmup: bool):
    """AveragedModel's update: an exponential moving average. With warm-up the decay after n
    updates is min(decay, (1 + n) / (10 + n)) (TensorFlow's ExponentialMovingAverage with
    num_updates), so early on the average follows D instead of holding on to its first weights for
    ~1 / (1 - decay) steps. Without it, exactly torch's get_ema_multi_avg_fn(decay)."""
    fixed = get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(ema_params, params, n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)  # AveragedModel itself reads n_averaged on the host every update
        get_ema_multi_avg_fn(min(decay, (1 + n) / (10 + n)))(ema_params, params, n_averaged)
    return update if warmup else fixed


def make_ema(D: nn.Module, decay: float, warmup: bool = True) -> AveragedModel:
    return AveragedModel(D, multi_avg_fn=ema_update(decay, warmup), use_buffers=True)


@dataclass
class Run:
    cfg: Config
    data: SourceData
    split: Split
    dd: Dist
    device: torch.device
    algo: Algorithm
    D: nn.Module
    G: nn.Module | None                 # None: the method trains no generator
    ema: AveragedModel | None
    parts: StepParts
    schedule: RateSchedule
    lab: LabeledStream
    unl: UnlabeledStream | None         # D's unlabeled batches (None without G)
    unl_g: UnlabeledStream | None       # the real batches G's features are matched to
    fixed_z: torch.Tensor | None        # noise of the sample grids, fixed for the run
    val: tuple | None                   # (images, labels) of the validation holdout, read once
    steps_per_epoch: int
    term_names: list[str]               # columns of `losses`: D terms, d_loss, G terms, g_loss
    epoch: int = 0                      # epochs finished
    step: int = 0                       # steps finished in the current epoch
    global_step: int = 0
    best_val: float = -1.0
    lr: float = 0.0                     # D's learning rate at the last step
    losses: torch.Tensor | None = None  # (steps_per_epoch, len(term_names)): this epoch's loss rows

    @property
    def eval_model(self) -> nn.Module:
        """What is evaluated and exported: the EMA of D when the run keeps one."""
        return self.ema.module if self.ema is not None else self.D

    def train_mode(self) -> None:
        for net in (self.D, self.G):
            if net is not None:
                net.train()

    def advance(self, row: list[torch.Tensor]) -> None:
        """Record one step's loss terms and move the position and the learning rates on."""
        self.losses[self.step] = torch.stack([v.detach().float() for v in row]).cpu()
        self.step, self.global_step = self.step + 1, self.global_step + 1
        self.lr = self.parts.opt_d.param_groups[0]["lr"]
        self.schedule.seek(self.schedule.position + 1)

    def finish_epoch(self) -> None:
        self.epoch, self.step = self.epoch + 1, 0
        self.losses = torch.zeros_like(self.losses)

    # ---- the checkpoint layout
    def state_dict(self) -> dict:
        p = self.parts
        return {"config": self.cfg.to_dict(), "split": self.split.to_dict(), "classes": self.data.classes,
                "input_shape": [self.data.train.x.shape[1], self.data.train.x.shape[-1]],
                "D": self.D.state_dict(), "G": self.G.state_dict() if self.G is not None else None,
                "opt_d": p.opt_d.state_dict(), "opt_g": p.opt_g.state_dict() if p.opt_g is not None else None,
                "ema": self.ema.state_dict() if self.ema is not None else None, "fixed_z": self.fixed_z,
                "epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                "best_val": self.best_val, "acc": self.losses, "world_size": self.dd.world,
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                        "lab": self.lab.state_dict(),
                        "unl": self.unl.state_dict() if self.unl is not None else None,
                        "unl_g": self.unl_g.state_dict() if self.unl_g is not None else None}}

    def load_state_dict(self, s: dict) -> bool:
        """Restore a checkpoint; False when the data changed since (files of a folder gone or added),
        so the batch streams start afresh and the resumed run cannot match an uninterrupted one."""
        saved = s["split"]
        exact = (saved["num_train"], saved["labeled"], saved["val"]) == \
            (self.split.num_train, self.split.labeled, self.split.val)
        self.D.load_state_dict(s["D"])
        self.parts.opt_d.load_state_dict(s["opt_d"])
        if self.G is not None:
            self.G.load_state_dict(s["G"])
            self.parts.opt_g.load_state_dict(s["opt_g"])
        if self.ema is not None:
            self.ema.load_state_dict(s["ema"])
        self.fixed_z = s["fixed_z"]
        self.epoch, self.step, self.global_step, self.best_val = s["epoch"], s["step"], s["global_step"], s["best_val"]
        self.losses = s["acc"]
        if len(self.losses) != self.steps_per_epoch or not exact:  # another batch or data: redo the partial epoch
            self.losses, self.step = torch.zeros(self.steps_per_epoch, len(self.term_names)), 0
        self.schedule.seek(self.epoch * self.steps_per_epoch + self.step)
        torch.set_rng_state(s["rng"]["torch"])
        if s["rng"]["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(s["rng"]["cuda"])
        if self.dd.rank:
            torch.manual_seed(self.cfg.train.seed + 1_000_003 * self.dd.rank + self.global_step)
        if not exact:
            return False
        self.lab.load_state_dict(s["rng"]["lab"])
        for stream, key in ((self.unl, "unl"), (self.unl_g, "unl_g")):
            if stream is not None:
                stream.load_state_dict(s["rng"][key])
        return True


def build_run(cfg: Config, data: SourceData, split: Split, device: torch.device, dd: Dist = Dist()) -> Run:
    """Everything a run trains with, at step 0: seeded, so the same config gives the same run.
    The run's config is `cfg` settled for the data: the net chosen, its settings filled in."""
    K, channels, size = data.num_classes, data.train.x.shape[1], data.train.x.shape[-1]
    cfg = settle(cfg, channels, size)
    t = cfg.train
    unl_pool = torch.from_numpy(split.unlabeled_indices())
    global_batch = t.batch_size * dd.world  # train.batch_size is per process
    steps_per_epoch = len(unl_pool) // global_batch
    if steps_per_epoch == 0:
        raise ConfigError(f"--train.batch_size: a global batch of {global_batch} exceeds the {len(unl_pool)} "
                          "unlabeled images")
    steps_per_epoch = min(steps_per_epoch, t.max_steps or steps_per_epoch)
    if t.epochs is None:  # a budget in steps, so a small folder gets the steps a large dataset gets
        t.epochs = max(1, math.ceil(DEFAULT_STEPS / steps_per_epoch))

    torch.manual_seed(t.seed)
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, channels, size, algo.num_logits(K), generator=algo.uses_generator)
    sync_bn = t.sync_bn and dd.enabled
    if sync_bn and device.type != "cuda":
        raise ConfigError("--train.sync_bn needs CUDA devices (SyncBatchNorm does not run on the CPU)")
    D = to_layout((nn.SyncBatchNorm.convert_sync_batchnorm(D) if sync_bn else D).to(device), t.channels_last)

    def stream_seed(k: int) -> int:  # the same on every rank: each rank takes its slice of one global batch
        return t.seed * 4 + k

    def unlabeled(k: int) -> UnlabeledStream:
        return UnlabeledStream(data.train.x, unl_pool, t.batch_size, stream_seed(k), device, cfg.data.workers,
                               dd.rank, dd.world)

    lab = LabeledStream(data.train.x, data.train.y, torch.tensor(split.labeled, dtype=torch.long), t.batch_size,
                        stream_seed(1), device, dd.rank, dd.world)
    unl = unl_g = fixed_z = None
    if G is not None:  # what a generator needs: the unlabeled streams and the samples' fixed noise
        G = to_layout((nn.SyncBatchNorm.convert_sync_batchnorm(G) if sync_bn else G).to(device), t.channels_last)
        unl, unl_g = unlabeled(2), unlabeled(3)
        fixed_z = G.sample_z(64, "cpu", torch.Generator().manual_seed(t.seed))
    if hasattr(D, "data_init"):  # data-dependent init of weight-normalised layers (Salimans et al.)
        D.data_init(UnlabeledStream(data.train.x, unl_pool, 500, stream_seed(4), device).next())
    if hasattr(G, "data_init"):
        G.data_init(G.sample_z(t.batch_size, device))
    ema = make_ema(D, t.ema, t.ema_warmup) if t.ema else None
    if dd.rank:  # dropout, noise and z differ between ranks; rank 0 draws what a single process would
        torch.manual_seed(t.seed + 1_000_003 * dd.rank)

    val_idx = torch.tensor(split.val, dtype=torch.long)
    val = (data.train.x[val_idx], data.train.y[val_idx]) if len(val_idx) else None  # folders: read files once
    parts = make_step_parts(cfg, algo, D, G, device, ema=ema, distributed=dd.enabled)
    schedule = RateSchedule([opt for opt in (parts.opt_d, parts.opt_g) if opt is not None],
                            lr_factor(cfg, steps_per_epoch))
    names = [f"d/{n}" for n in algo.d_terms] + ["d_loss"]
    if G is not None:
        names += [f"g/{n}" for n in algo.g_terms] + ["g_loss"]
    return Run(cfg=cfg, data=data, split=split, dd=dd, device=device, algo=algo, D=D, G=G, ema=ema, parts=parts,
               schedule=schedule, lab=lab, unl=unl, unl_g=unl_g, fixed_z=fixed_z, val=val,
               steps_per_epoch=steps_per_epoch, term_names=names, lr=cfg.optim.lr,
               losses=torch.zeros(steps_per_epoch, len(names)))


def restore_models(state: dict, use_ema: bool = True) -> tuple[Config, Algorithm, nn.Module, nn.Module | None]:
    """(config, algorithm, D, G) from a checkpoint, on the CPU in eval mode; D is the EMA copy when
    the run kept one, G is None for a method without a generator.

    The networks are rebuilt from the checkpoint's own config, so a checkpoint is usable without
    the run folder it came from.
    """
    cfg = from_dict(state["config"])
    algo = build_algorithm(cfg.method)
    shape = state.get("input_shape")
    if shape is None:
        raise CheckpointError("checkpoint does not record its input shape")
    has_g = state.get("G") is not None
    D, G = build_nets(cfg.model, int(shape[0]), int(shape[1]), algo.num_logits(len(state["classes"])), has_g)
    try:
        if use_ema and state.get("ema"):
            ema = make_ema(D, cfg.train.ema or 0.999)
            ema.load_state_dict(state["ema"])
            D = ema.module
        else:
            D.load_state_dict(state["D"])
        if G is not None:
            G.load_state_dict(state["G"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint weights do not fit the networks its config describes: "
                              f"{str(e).splitlines()[0]}") from None
    D.eval()
    if G is not None:
        G.eval()
    return cfg, algo, D, G
