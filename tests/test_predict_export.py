"""Using a trained classifier: `ssgan predict`, `ssgan suggest` and `ssgan export` (ONNX, TorchScript).

One folder dataset is trained once for the module (`ssgan train --data folder:...`); every command
then runs in-process through `ssgan.cli.main`, as a user would call it. Exported models are checked
against the PyTorch classifier they came from, on the same preprocessed images.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ssgan import cli
from ssgan.training.checkpoint import load
from ssgan.training.run import restore_models
from ssgan.data.folder import FileImages
from ssgan.data.transforms import to_unit_range
from ssgan.export import Classifier
from ssgan.predict import collect_images, probabilities, uncertainty_order

from folder_fixtures import make_folder_dataset, snapshot, train_args


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A folder dataset (3 classes, RGB and grayscale, PNG and JPEG) and a short run on it, size inferred."""
    tmp = tmp_path_factory.mktemp("folder_run")
    data = make_folder_dataset(tmp / "data", labeled=4, unlabeled=40, test=3, seed=1)
    before = snapshot(data)
    run = tmp / "run"
    assert cli.main(train_args(data, run, size=None)) == 0
    state = load(run)
    return {"data": data, "run": run, "before": before, "classes": state["classes"],
            "channels": state["input_shape"][0], "size": state["input_shape"][1]}


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def torch_logits(run: Path, files: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1], class logits) from the checkpoint's own classifier, as predict computes them."""
    state = load(run)
    _, algo, D, _ = restore_models(state)
    channels, size = state["input_shape"]
    x = to_unit_range(FileImages(files, size, channels)[:])  # (B, C, H, W)
    with torch.no_grad():
        return x, Classifier(D, algo).eval()(x)


# -------------------------------------------------------------------------------------------- predict
def test_training_inferred_the_input_shape(trained):
    assert trained["classes"] == ["cat", "dog", "owl"]
    assert trained["channels"] == 3 and trained["size"] in (28, 32)  # mixed RGB/L files, sides 24-36


def test_predict_a_folder(trained, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    assert cli.main(["predict", str(trained["run"]), str(trained["data"] / "test"), "-o", str(out)]) == 0
    assert "wrote 9 predictions" in capsys.readouterr().out
    header, rows = read_csv(out)
    assert header == ["path", "predicted", "confidence", "p_cat", "p_dog", "p_owl"]
    files = sorted((trained["data"] / "test").rglob("*.*"))
    assert [r["path"] for r in rows] == [str(f) for f in files]  # one row per image, in path order
    for r in rows:
        p = np.array([float(r[f"p_{c}"]) for c in trained["classes"]])
        assert p.min() >= 0 and p.sum() == pytest.approx(1.0, abs=1e-5)
        assert r["predicted"] == trained["classes"][int(p.argmax())]
        assert float(r["confidence"]) == pytest.approx(p.max(), abs=1e-6)
    # The CSV holds the checkpoint classifier's softmax.
    _, logits = torch_logits(trained["run"], files)
    got = torch.tensor([[float(r[f"p_{c}"]) for c in trained["classes"]] for r in rows])
    assert torch.allclose(got, logits.softmax(1), atol=2e-6)


def test_predict_single_files_agrees_with_the_folder(trained, tmp_path):
    test = trained["data"] / "test"
    picked = [min((test / "owl").iterdir()), max((test / "cat").iterdir())]
    assert cli.main(["predict", str(trained["run"] / "checkpoints" / "last.pt"), *map(str, picked),
                     "-o", str(tmp_path / "two.csv")]) == 0
    assert cli.main(["predict", str(trained["run"]), str(test), "-o", str(tmp_path / "all.csv")]) == 0
    _, two = read_csv(tmp_path / "two.csv")
    _, everything = read_csv(tmp_path / "all.csv")
    assert [r["path"] for r in two] == [str(p) for p in picked]  # the order given
    by_path = {r["path"]: r for r in everything}
    for row, p in zip(two, picked):  # equal up to float rounding (a batch of 2 and one of all sum differently)
        same = by_path[str(p)]
        assert row["predicted"] == same["predicted"]
        assert all(abs(float(row[k]) - float(same[k])) <= 2e-6 for k in row if k.startswith("p_"))


def test_predict_prints_csv_without_output(trained, capsys):
    f = min((trained["data"] / "test" / "dog").iterdir())
    assert cli.main(["predict", str(trained["run"]), str(f)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,predicted,confidence,p_cat,p_dog,p_owl" and len(lines) == 2
    assert lines[1].startswith(f"{f},")


def test_predict_errors_name_the_path(trained, tmp_path, capsys):
    missing = tmp_path / "nope.png"
    assert cli.main(["predict", str(trained["run"]), str(missing)]) == 2
    assert f"{missing}: no such file or folder" in capsys.readouterr().err
    bad = tmp_path / "imgs" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"\x89PNG\r\n but not really")
    assert cli.main(["predict", str(trained["run"]), str(bad.parent)]) == 2
    assert str(bad) in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["predict", str(trained["run"]), str(tmp_path / "empty")]) == 2
    assert "no images" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- suggest
def test_uncertainty_order_on_hand_made_probabilities():
    probs = torch.tensor([
        [1.0, 0.0, 0.0],          # 0: margin 1
        [0.5, 0.25, 0.25],        # 1: margin 0.25, entropy 1.04
        [0.5, 0.5, 0.0],          # 2: margin 0, entropy ln 2
        [0.625, 0.375, 0.0],      # 3: margin 0.25, entropy 0.66 -> after 1
        [1 / 3, 1 / 3, 1 / 3],    # 4: margin 0, entropy ln 3 -> before 2
        [0.75, 0.125, 0.125],     # 5: margin 0.625
        [0.5, 0.25, 0.25],        # 6: same as 1 -> by index, after 1
    ])
    order, margin, entropy = uncertainty_order(probs)
    assert order.tolist() == [4, 2, 1, 6, 3, 5, 0]
    assert margin.tolist() == pytest.approx([1.0, 0.25, 0.0, 0.25, 0.0, 0.625, 0.25])
    assert entropy[4].item() == pytest.approx(math.log(3)) and entropy[2].item() == pytest.approx(math.log(2))
    assert entropy[0].item() == pytest.approx(0.0, abs=1e-6)


def test_suggest_ranks_the_least_certain_and_copies_them(trained, tmp_path, capsys):
    out, dest = tmp_path / "suggest.csv", tmp_path / "to_label"
    unl = trained["data"] / "unlabeled"
    assert cli.main(["suggest", str(trained["run"]), str(unl), "-n", "5", "-o", str(out),
                     "--copy-to", str(dest)]) == 0
    assert "wrote the 5 least certain images" in capsys.readouterr().out
    header, rows = read_csv(out)
    assert header == ["rank", "path", "predicted", "margin", "entropy"]
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    margins = [float(r["margin"]) for r in rows]
    assert margins == sorted(margins)
    # The same five as ranking every unlabeled image's probabilities directly.
    files = collect_images([str(unl)])
    probs, _ = probabilities(str(trained["run"]), files, progress=False)
    order, margin, _ = uncertainty_order(probs)
    assert [r["path"] for r in rows] == [str(files[i]) for i in order[:5]]
    assert max(margins) <= float(margin.sort().values[5]) + 1e-6
    copied = sorted(p.name for p in dest.iterdir())
    assert copied == [f"{k:04d}_{Path(r['path']).name}" for k, r in enumerate(rows, start=1)]
    for name, r in zip(copied, rows):
        assert (dest / name).read_bytes() == Path(r["path"]).read_bytes()


# --------------------------------------------------------------------------------------------- export
def test_export_onnx_matches_pytorch_and_carries_preprocessing(trained, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "clf.onnx"
    assert cli.main(["export", str(trained["run"]), "--format", "onnx", "-o", str(path)]) == 0
    assert "wrote onnx classifier" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["classes"]) == trained["classes"]
    assert json.loads(meta["image_size"]) == trained["size"]
    assert json.loads(meta["channels"]) == trained["channels"]
    assert "127.5" in meta["preprocessing"] and "RGB" in meta["preprocessing"]
    assert meta["format"] == "ssgan-classifier-v1"

    files = sorted((trained["data"] / "test").rglob("*.*"))
    files += sorted((trained["data"] / "labeled").rglob("*.*"))
    x, expected = torch_logits(trained["run"], files)  # a batch of 21, not the export's example batch of 2
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["classes"] == meta["classes"]
    (got,) = session.run(["logits"], {"image": x.numpy()})
    assert got.shape == (len(files), len(trained["classes"]))
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=1e-4)


def test_export_torchscript_matches_pytorch(trained, tmp_path):
    path = tmp_path / "clf.pt"
    assert cli.main(["export", str(trained["run"]), "--format", "torchscript", "-o", str(path)]) == 0
    extra = {"ssgan.json": ""}
    model = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["ssgan.json"])
    assert meta["classes"] == trained["classes"] and meta["image_size"] == trained["size"]
    assert meta["channels"] == trained["channels"] and "127.5" in meta["preprocessing"]
    files = sorted((trained["data"] / "unlabeled").rglob("*.*"))[:13]
    x, expected = torch_logits(trained["run"], files)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_export_rejects_an_unknown_format(trained, tmp_path):
    with pytest.raises(SystemExit):  # argparse's choices
        cli.main(["export", str(trained["run"]), "--format", "tflite", "-o", str(tmp_path / "m")])


def test_nothing_is_written_into_the_data_folder(trained, tmp_path):
    data, run = trained["data"], str(trained["run"])
    assert cli.main(["predict", run, str(data), "-o", str(tmp_path / "p.csv")]) == 0
    assert cli.main(["suggest", run, str(data / "unlabeled"), "-n", "3", "-o", str(tmp_path / "s.csv"),
                     "--copy-to", str(tmp_path / "copies")]) == 0
    assert cli.main(["export", run, "--format", "torchscript", "-o", str(tmp_path / "m.pt")]) == 0
    assert snapshot(data) == trained["before"]  # training, predicting, suggesting: no file added or touched
