"""One real `ssgan` training run for a few steps, as throughput.py's and peak_rss.py's child: its
epoch time with data (extrapolated to the full epoch) and its peak resident memory, as JSON.

It imports only what `ssgan train` imports. Its peak is read from its own memory map (VmHWM):
ru_maxrss would report at least the RSS of the throughput.py that started it.

    python benchmarks/real_run.py '{"method": "kplus1", "net": "dcgan32", "size": 32, "width": 0.5,
        "batch": 100, "amp": "none", "lr": 2e-4, "steps": 20, "run_dir": "/tmp/x", "data_root": null}'
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

from ssgan import config as C
from ssgan.training.host import peak_rss_mb
from ssgan.training.loop import train


def main(spec: dict) -> None:
    overrides = {"method.name": spec["method"], "model.net": spec["net"], "model.width": spec["width"],
                 "data.image_size": spec["size"], "train.batch_size": spec["batch"], "train.amp": spec["amp"],
                 "optim.lr": spec["lr"], "train.max_steps": spec["steps"], "train.epochs": 1,
                 "train.sample_every": 0, "data.labels": 100}
    if spec["data_root"]:
        overrides["data.root"] = spec["data_root"]
    cfg = C.build(overrides=overrides)
    with contextlib.redirect_stdout(io.StringIO()):
        summary = train(cfg, Path(spec["run_dir"]))
    rec = json.loads((Path(spec["run_dir"]) / "metrics.jsonl").read_text().splitlines()[-1])
    steps_full = 60000 // spec["batch"]
    print(json.dumps({"epoch_s_full": steps_full * spec["batch"] / rec["images_per_s"],
                      "images_per_s_with_data": rec["images_per_s"],
                      "peak_rss_mb": peak_rss_mb(),  # its own, not its parent's (see peak_rss_mb)
                      "dataset": summary["dataset"]}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
