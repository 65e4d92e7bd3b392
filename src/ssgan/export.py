"""`ssgan export`: the classifier alone (no generator) as ONNX or TorchScript, with its
preprocessing written into the file's metadata so it can be used without ssgan.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from .errors import ConfigError
from .files import atomic_write
from .training import checkpoint as ckpt
from .training.run import restore_models


class Classifier(nn.Module):
    """Images in [-1, 1], (B, C, H, W) float32 -> class logits (B, K)."""

    def __init__(self, D: nn.Module, algorithm):
        super().__init__()
        self.D, self.algorithm = D, algorithm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, _ = self.D(x)
        return self.algorithm.class_logits(logits)


def metadata(state: dict) -> dict:
    channels, size = state["input_shape"]
    return {"format": "ssgan-classifier-v1", "classes": state["classes"], "image_size": size,
            "channels": channels, "input": f"float32 (B, {channels}, {size}, {size})",
            "preprocessing": f"convert to {'grayscale (L)' if channels == 1 else 'RGB'}, resize to {size}x{size} "
                             "(bilinear, no crop), scale pixels as x / 127.5 - 1 (range [-1, 1])",
            "output": "class logits (B, K); softmax gives probabilities", "method": state["config"]["method"]["name"],
            "net": state["config"]["model"]["net"]}


def export(checkpoint: str, fmt: str, output: str) -> dict:
    state = ckpt.load(checkpoint)
    _, algo, D, _ = restore_models(state)
    model = Classifier(D, algo).eval()
    meta = metadata(state)
    example = torch.zeros(2, meta["channels"], meta["image_size"], meta["image_size"])
    if fmt == "onnx":
        try:
            import onnx
        except ImportError:
            raise ConfigError("ONNX export needs the onnx package: pip install 'ssgan[export]' "
                              "(or --format torchscript, which needs nothing more)") from None

        def write(tmp: Path) -> None:
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, input_names=["image"],
                              output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
            proto = onnx.load(str(tmp))
            for key, value in meta.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
            onnx.save(proto, str(tmp))
    elif fmt == "torchscript":
        def write(tmp: Path) -> None:
            traced = torch.jit.trace(model, example)
            torch.jit.save(traced, str(tmp), _extra_files={"ssgan.json": json.dumps(meta)})
    else:
        raise ConfigError(f"--format {fmt!r}: expected onnx or torchscript")
    atomic_write(output, write)
    return meta
