"""Batch streams, and the guarantee that the labels of unlabeled images never reach training.

The guarantee is tested the strong way: the labels of every training image outside the labeled set
(and the validation holdout, which evaluation reads) are replaced by wrong ones, and the batches,
the losses and the final weights must come out bit-identical.
"""
from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ssgan.training.loop
from ssgan.training import checkpoint
from ssgan import config as C
from ssgan.data.synthetic import load_synthetic
from ssgan.data.split import Split, draw_split
from ssgan.data.streams import IndexStream, LabeledStream, UnlabeledStream

CPU = torch.device("cpu")
TIMING = {"epoch_time", "images_per_s", "elapsed"}  # the only figures allowed to differ between runs


# ----------------------------------------------------------------------------------------- IndexStream
def test_each_pass_is_a_permutation_of_the_pool():
    pool = torch.arange(100, 110)
    s = IndexStream(pool, seed=0)
    first, second = s.next(10), s.next(10)
    assert sorted(first.tolist()) == pool.tolist() and sorted(second.tolist()) == pool.tolist()
    assert first.tolist() != second.tolist()  # reshuffled between passes


def test_pool_smaller_than_a_batch_is_tiled():
    pool = torch.tensor([3, 5, 7])
    batch = IndexStream(pool, seed=1).next(10)
    assert len(batch) == 10
    assert np.bincount(batch.numpy(), minlength=8)[[3, 5, 7]].tolist() in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert set(batch.tolist()) == {3, 5, 7}


def test_streams_are_seeded_and_ignore_the_global_rng():
    pool = torch.arange(50)
    torch.manual_seed(1)
    a = IndexStream(pool, seed=4).next(7)
    torch.manual_seed(2)
    b = IndexStream(pool, seed=4).next(7)
    c = IndexStream(pool, seed=5).next(7)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_state_dict_resumes_mid_pass():
    pool = torch.arange(23)
    a = IndexStream(pool, seed=0)
    a.next(9)
    state = a.state_dict()
    expected = [a.next(9) for _ in range(5)]
    b = IndexStream(pool, seed=99)
    b.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(expected, [b.next(9) for _ in range(5)]))


def test_empty_pool_is_an_error():
    with pytest.raises(ValueError, match="empty pool"):
        IndexStream(torch.tensor([], dtype=torch.long), seed=0)


def test_unlabeled_stream_scales_images_and_takes_no_labels():
    assert "labels" not in inspect.signature(UnlabeledStream).parameters
    images = torch.tensor([0, 255, 51], dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 1, 4, 4).contiguous()
    x = UnlabeledStream(images, torch.arange(3), 6, seed=0, device=CPU).next()
    assert x.shape == (6, 1, 4, 4) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    assert torch.unique(x).tolist() == pytest.approx([-1.0, 51 / 127.5 - 1, 1.0])


# ------------------------------------------------------------------------------- no label leaks: streams
def garbled(y: torch.Tensor, keep: set[int], num_classes: int) -> torch.Tensor:
    """Every label outside `keep` replaced by a wrong class."""
    out = y.clone()
    idx = torch.tensor([i for i in range(len(y)) if i not in keep], dtype=torch.long)
    out[idx] = (y[idx] + 1) % num_classes
    return out


def test_streams_never_read_unlabeled_labels():
    data = load_synthetic()
    K = data.num_classes
    split = draw_split(data.train.y.numpy(), K, data.name, 0, labels=20, val_size=40)
    y_bad = garbled(data.train.y, set(split.labeled) | set(split.val), K)
    assert (y_bad != data.train.y).sum() == len(data.train) - 20 - 40
    # as train.py builds them
    unl_pool = torch.from_numpy(split.unlabeled_indices())
    lab_pool = torch.tensor(split.labeled, dtype=torch.long)

    def draw(y: torch.Tensor):
        lab = LabeledStream(data.train.x, y, lab_pool, 50, 1, CPU)
        unl = UnlabeledStream(data.train.x, unl_pool, 50, 2, CPU)
        return [lab.next() for _ in range(12)], [unl.next() for _ in range(12)]

    (lab_true, unl_true), (lab_bad, unl_bad) = draw(data.train.y), draw(y_bad)
    for (xa, ya), (xb, yb) in zip(lab_true, lab_bad):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    for xa, xb in zip(unl_true, unl_bad):
        assert torch.equal(xa, xb)
    # and the labeled batches do carry the true labels of their images (checked through the pixels)
    lab_x = torch.stack([data.train.x[i] for i in split.labeled]).float().div(127.5).sub(1).flatten(1)
    for x, y in lab_true:
        match = (x.flatten(1)[:, None, :] == lab_x[None]).all(-1).float().argmax(1)
        assert torch.equal(y, data.train.y[lab_pool[match]])


# ------------------------------------------------------------------------------ no label leaks: training
def tiny_config() -> C.Config:
    return C.build(overrides={
        "data.dataset": "synthetic", "data.image_size": 16, "data.labels": 20, "data.val_size": 40,
        "model.net": "mlp", "method.name": "fm", "train.epochs": 1, "train.max_steps": 5,
        "train.batch_size": 50, "train.sample_every": 0, "train.device": "cpu", "train.seed": 3})


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def run_with_garbled_labels(monkeypatch, run_dir: Path, split_from: Path, keep_of) -> int:
    """Train with the split of `split_from` reused and every label outside keep_of(split) garbled."""
    run_dir.mkdir()
    shutil.copy(split_from / "split.json", run_dir / "split.json")
    split = Split.load(run_dir / "split.json")
    real_load_source = ssgan.training.loop.load_source
    garbled_count = []

    def load_source(cfg_data, **kwargs):
        data = real_load_source(cfg_data, **kwargs)
        y_bad = garbled(data.train.y, keep_of(split), data.num_classes)
        garbled_count.append(int((y_bad != data.train.y).sum()))
        data.train.y = y_bad
        return data

    monkeypatch.setattr(ssgan.training.loop, "load_source", load_source)
    ssgan.training.loop.train(tiny_config(), run_dir)
    monkeypatch.undo()
    assert len(garbled_count) == 1
    return garbled_count[0]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference")
    ssgan.training.loop.train(tiny_config(), run_dir)
    return run_dir


def test_training_never_reads_unlabeled_labels(reference_run, tmp_path, monkeypatch):
    n = run_with_garbled_labels(monkeypatch, tmp_path / "garbled", reference_run,
                                lambda s: set(s.labeled) | set(s.val))
    assert n == 600 - 20 - 40  # every other training label was wrong
    a, b = records(reference_run), records(tmp_path / "garbled")
    assert len(a) == 1 and a[0]["step"] == 5
    assert a == b  # every loss term and accuracy, bit for bit
    da, db = checkpoint.load(reference_run)["D"], checkpoint.load(tmp_path / "garbled")["D"]
    assert da.keys() == db.keys() and all(torch.equal(da[k], db[k]) for k in da)


def test_the_comparison_would_notice_a_leak(reference_run, tmp_path, monkeypatch):
    """Control: garbling the labeled images' labels too changes the losses (the test above can fail)."""
    run_with_garbled_labels(monkeypatch, tmp_path / "leaky", reference_run, lambda s: set(s.val))
    a, b = records(reference_run)[0], records(tmp_path / "leaky")[0]
    assert a["d/sup"] != b["d/sup"]
