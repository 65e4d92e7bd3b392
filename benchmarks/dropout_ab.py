"""Does ssgan's CPU dropout (four coins per 64-bit draw, `ssgan.nets.dropout`) speed up the
training step? An A/B in one process against `nn.Dropout`'s own forward (`bernoulli_`); against
ssgan's earlier form, which multiplied by the boolean mask (a float-by-bool multiply copies the
mask into floats first, forward and backward) and, in D's fused first layer, took LeakyReLU's
backward with `torch.where`; and against a variant that multiplies by a float mask (0 or 1/keep),
which, saved for backward, takes four bytes per element instead of one.

One step setup per shipped config at its batch size, fp32, the config's net and method; the two dropout
forwards alternate in rounds of a few steps, so machine noise hits both alike. Prints the CPU model,
the thread count and the median ms per step of each, and writes JSON.

    python benchmarks/dropout_ab.py [--threads 1] [--rounds 8]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ssgan import config as C
from ssgan.algorithms import build_algorithm
from ssgan.files import atomic_write_text
from ssgan.nets import build_nets, dropout, settle, to_layout
from ssgan.tracking import cpu_model
from ssgan.training.step import d_step, g_step, make_step_parts

ROOT = Path(__file__).resolve().parents[1]
CASES = [  # (config, image size, channels)
    ("configs/mnist_kplus1_dcgan_ent.yaml", 28, 1),   # the K+1 DCGAN at width 0.25
    ("configs/cifar10_fm_cpu.yaml", 32, 3),           # cnn32 at width 0.25
    ("configs/seed.yaml", 64, 1),                     # the recipe: dcgan64 at full width, batch 128
]


def make_step(config: str, size: int, channels: int):
    cfg = settle(C.build([str(ROOT / config)]), channels, size)
    torch.manual_seed(0)
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, channels, size, algo.num_logits(10))
    D, G = to_layout(D, cfg.train.channels_last), to_layout(G, cfg.train.channels_last)  # as training does
    parts = make_step_parts(cfg, algo, D, G, torch.device("cpu"))
    b = cfg.train.batch_size
    x = lambda: torch.rand(b, channels, size, size) * 2 - 1  # noqa: E731
    x_lab, y_lab, x_unl, x_unl_g = x(), torch.randint(0, 10, (b,)), x(), x()
    return lambda: d_step(parts, x_lab, y_lab, x_unl) + g_step(parts, x_unl_g)


def bool_multiply_forward(self, x: torch.Tensor) -> torch.Tensor:
    """ssgan's Dropout up to session 19: the boolean mask multiplied in."""
    if not self.cheap_mask_applies(x):
        return torch.nn.Dropout.forward(self, x)
    mask, keep = dropout.keep_mask(x, 1 - self.p)
    return (x.mul_(mask) if self.inplace else x.mul(mask)).mul_(1 / keep)


class _BoolMultiplyLeakyReLUThenDropout(torch.autograd.Function):
    """The fused first layer up to session 19: the boolean mask multiplied in, `torch.where` backward."""

    @staticmethod
    def forward(ctx, x, slope, mask, scale):
        y = torch.nn.functional.leaky_relu(x, slope).mul_(mask).mul_(scale)
        ctx.save_for_backward(y, mask)
        ctx.slope, ctx.scale = slope, scale
        return y

    @staticmethod
    def backward(ctx, grad):
        y, mask = ctx.saved_tensors
        g = grad.mul(ctx.scale).mul_(mask)
        return torch.where(y > 0, g, g * ctx.slope), None, None, None


def nn_fused_forward(self, x: torch.Tensor) -> torch.Tensor:
    """D's first layer as LeakyReLU then nn.Dropout."""
    return torch.nn.Dropout.forward(self, torch.nn.functional.leaky_relu(x, self.slope))


def bool_multiply_fused_forward(self, x: torch.Tensor) -> torch.Tensor:
    if not self.cheap_mask_applies(x):  # (not LeakyReLUDropout.forward: the A/B patches it to this function)
        return nn_fused_forward(self, x)
    mask, keep = dropout.keep_mask(x, 1 - self.p)
    return _BoolMultiplyLeakyReLUThenDropout.apply(x, self.slope, mask, 1 / keep)


def float_mask_forward(self, x: torch.Tensor) -> torch.Tensor:
    """ssgan's Dropout with the mask turned into floats (0 or 1/keep) before the multiply."""
    if not self.training or not 0 < self.p < 1 or x.device.type != "cpu" or self.inplace:
        return torch.nn.Dropout.forward(self, x)
    mask, keep = dropout.keep_mask(x, 1 - self.p)
    return x * mask.to(x.dtype).mul_(1 / keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="steps per round and variant")
    parser.add_argument("--cases", default=",".join(str(i) for i in range(len(CASES))),
                        help="indices into CASES, comma-separated (2: the recipe, ~10 s per step on one thread)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dropout_ab.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shipped = (dropout.Dropout.forward, dropout.LeakyReLUDropout.forward)
    forwards = {  # name: (Dropout's forward, LeakyReLUDropout's forward)
        "nn.Dropout (bernoulli_)": (torch.nn.Dropout.forward, nn_fused_forward),
        "ssgan Dropout": shipped,
        "ssgan Dropout, bool multiply (to session 19)": (bool_multiply_forward, bool_multiply_fused_forward),
        "ssgan Dropout, float mask": (float_mask_forward, shipped[1])}
    print(f"CPU {cpu_model()}, {args.threads} thread(s), torch {torch.__version__}")
    rows = []
    try:
        for config, size, channels in [CASES[int(i)] for i in args.cases.split(",")]:
            step = make_step(config, size, channels)
            for _ in range(3):
                step()
            times = {name: [] for name in forwards}
            for _ in range(args.rounds):
                for name, (forward, fused) in forwards.items():
                    dropout.Dropout.forward, dropout.LeakyReLUDropout.forward = forward, fused
                    step()                                           # one untimed step after the switch
                    t = time.perf_counter()
                    for _ in range(args.steps):
                        step()
                    times[name].append((time.perf_counter() - t) / args.steps * 1e3)
            ms = {name: statistics.median(v) for name, v in times.items()}
            plain, fast, flt = ms["nn.Dropout (bernoulli_)"], ms["ssgan Dropout"], ms["ssgan Dropout, float mask"]
            old = ms["ssgan Dropout, bool multiply (to session 19)"]
            rows.append({"config": config, "ms_per_step": ms, "speedup": plain / fast,
                         "speedup_float_mask": plain / flt, "speedup_over_bool_multiply": old / fast})
            print(f"{config:40s} nn.Dropout {plain:7.1f} ms/step   ssgan Dropout {fast:7.1f} ms/step "
                  f"({plain / fast:.2f}x)   bool multiply {old:7.1f} ms/step ({plain / old:.2f}x)   "
                  f"float mask {flt:7.1f} ms/step ({plain / flt:.2f}x)")
    finally:
        dropout.Dropout.forward, dropout.LeakyReLUDropout.forward = shipped
    atomic_write_text(Path(args.out), json.dumps({"cpu": cpu_model(), "threads": args.threads,
                                                  "torch": torch.__version__, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
