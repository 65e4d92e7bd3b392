"""What a discriminator's forward pass keeps for its backward: the bytes of every distinct tensor
autograd saves (torch.autograd.graph.saved_tensors_hooks), per net, in training mode.

Unlike peak RSS this is exact and does not depend on the allocator or on what else runs, so it
shows what a memory lever in the nets saves (in-place layers, fused LeakyReLU and dropout). To
compare code versions, run it once per version with PYTHONPATH pointing at that version's src/:

    python benchmarks/saved_activations.py --out benchmarks/results/saved_activations.json
    PYTHONPATH=/path/to/old/src python benchmarks/saved_activations.py --out /tmp/old.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import ssgan
from ssgan import config as C
from ssgan.files import atomic_write_text
from ssgan.nets import build_nets, to_layout

# (net, image size, width, images: the real half of a D step's batch: labeled + unlabeled)
ROWS = [("dcgan64", 64, 1.0, 256), ("dcgan32", 32, 0.5, 200), ("dcgan28", 28, 0.25, 200)]


def saved_bytes(net: str, size: int, width: float, n: int) -> tuple[int, int]:
    """(bytes of the distinct storages D's forward saves for backward, bytes of D's parameters)."""
    cfg = C.build(overrides={"model.net": net, "data.image_size": size, "model.width": width})
    D, _ = build_nets(cfg.model, 1, size, 11)
    D = to_layout(D, True).train()
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    x = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        D(x.contiguous(memory_format=torch.channels_last))
    params = {p.untyped_storage().data_ptr() for p in D.parameters()}
    return sum(b for k, b in storages.items() if k not in params), sum(p.numel() * 4 for p in D.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args()
    print(f"ssgan from {Path(ssgan.__file__).parent}")
    rows = []
    for net, size, width, n in ROWS:
        saved, params = saved_bytes(net, size, width, n)
        rows.append({"net": net, "size": size, "width": width, "images": n, "saved_mb": saved / 2**20,
                     "param_mb": params / 2**20})
        print(f"{net} w{width} at {size}x{size}, {n} images: saved for backward {saved / 2**20:7.1f} MB "
              f"(parameters {params / 2**20:.1f} MB)")
    if args.out:
        atomic_write_text(Path(args.out), json.dumps({"ssgan_src": str(Path(ssgan.__file__).parent),
                                                      "torch": torch.__version__, "rows": rows}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
