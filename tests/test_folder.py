"""The folder source (`folder:PATH`): layout, inference of size and channels, lazy reading, bad files.

Datasets are written on the fly (tests/folder_fixtures.py): PNG and JPEG, mixed sizes, RGB and
grayscale, nested unlabeled folders. Errors are checked the way a user meets them: `ssgan train`
exits with code 2 and the message names the file or folder to fix.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ssgan import cli
from ssgan import config as C
from ssgan.data.folder import FileImages, load_folder
from ssgan.errors import DataError

from folder_fixtures import CLASSES, band_image, make_folder_dataset, save, snapshot, train_args

TIMING = {"epoch_time", "images_per_s", "elapsed"}


def all_paths(images: FileImages) -> list[Path]:
    return [images.path(i) for i in range(len(images))]


def data_cfg(**changes) -> C.DataConfig:
    return C.DataConfig(**changes)


def metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines if line.strip()]


# ------------------------------------------------------------------------------------ layout and counts
def test_classes_are_sorted_subfolder_names_and_counts_add_up(tmp_path):
    root = make_folder_dataset(tmp_path / "d", classes=("zebra", "ant", "mole"), labeled=3, unlabeled=10,
                               test=2)
    data = load_folder(data_cfg(), root)
    assert data.classes == ["ant", "mole", "zebra"]
    assert len(data.train) == 3 * 3 + 10 and len(data.test) == 3 * 2
    y = data.train.y
    assert y.dtype == torch.long and (y == -1).sum() == 10
    assert torch.bincount(y[y >= 0]).tolist() == [3, 3, 3]
    assert torch.bincount(data.test.y).tolist() == [2, 2, 2]
    # Labels follow the folder names: every file of labeled/<c>/ carries the index of c.
    for path, label in zip(all_paths(data.train.x), y.tolist()):
        if label >= 0:
            assert path.parent.name == data.classes[label]
    assert data.name == f"folder:{root}" and "9 labeled images in 3 classes, 10 unlabeled" in data.note


def test_nested_unlabeled_folders_are_searched(tmp_path):
    root = make_folder_dataset(tmp_path / "d", labeled=2, unlabeled=12, test=0)
    data = load_folder(data_cfg(), root)
    unl = [p for p, label in zip(all_paths(data.train.x), data.train.y.tolist()) if label == -1]
    assert len(unl) == 12
    folders = {p.parent.relative_to(root / "unlabeled").as_posix() for p in unl}
    assert folders == {".", "batch1", "batch1/deeper", "batch2"}


def test_without_test_or_unlabeled_folders(tmp_path):
    root = make_folder_dataset(tmp_path / "d", labeled=2, unlabeled=0, test=0)
    assert not (root / "test").exists() and not (root / "unlabeled").exists()
    data = load_folder(data_cfg(), root)
    assert data.test is None and len(data.train) == 6 and "no test/ folder" in data.note


def test_hidden_files_and_folders_are_ignored(tmp_path):
    root = make_folder_dataset(tmp_path / "d", labeled=2, unlabeled=4, test=1)
    (root / "labeled" / "cat" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "unlabeled" / ".DS_Store").write_bytes(b"junk")
    (root / "unlabeled" / "batch1" / "._u0001.png").write_bytes(b"AppleDouble junk")
    save(band_image(0, 3, 28, False, np.random.default_rng(0)), root / "unlabeled" / ".thumbs" / "t.png")
    (root / "labeled" / ".git").mkdir()  # a hidden folder is not a class
    (root / "test" / ".cache").mkdir()
    data = load_folder(data_cfg(), root)
    assert data.classes == list(CLASSES)
    assert len(data.train) == 6 + 4 and len(data.test) == 3 and not data.bad_files
    assert not any(part.startswith(".") for p in all_paths(data.train.x) for part in p.relative_to(root).parts)


# ---------------------------------------------------------------------------- inferred size and channels
def test_all_grayscale_infers_one_channel(tmp_path):
    root = make_folder_dataset(tmp_path / "d", rgb=0.0, jpeg=0.5)
    data = load_folder(data_cfg(), root)
    assert data.train.x.shape[1] == 1 and data.test.x.shape[1] == 1
    assert "channels 1 (inferred" in data.note


def test_one_rgb_labeled_image_infers_three_channels(tmp_path):
    root = make_folder_dataset(tmp_path / "d", rgb=0.0)
    save(band_image(1, 3, 28, True, np.random.default_rng(1)), root / "labeled" / "dog" / "colour.png")
    data = load_folder(data_cfg(), root)
    assert data.train.x.shape[1] == 3 and data.train.x[0].shape[0] == 3
    assert "channels 3 (inferred" in data.note


@pytest.mark.parametrize("sides, expected", [((20, 24, 26), 28), ((31, 32, 34), 32), ((56, 64, 80), 64)])
def test_image_size_snaps_the_labeled_median_to_a_net_size(tmp_path, sides, expected):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=3, test=1, sides=sides)
    data = load_folder(data_cfg(), root)
    assert data.train.x.shape[-2:] == (expected, expected) and data.test.x.shape[-1] == expected
    assert data.train.x[:4].shape[-2:] == (expected, expected)
    assert f"image size {expected}" in data.note


def test_non_square_images_use_their_short_side(tmp_path):
    root = tmp_path / "d"
    rng = np.random.default_rng(0)
    for k, name in enumerate(("a", "b")):
        for i in range(3):
            img = band_image(k, 2, 64, False, rng).resize((64, 30))  # 64 wide, 30 high: short side 30
            save(img, root / "labeled" / name / f"{i}.png")
    data = load_folder(data_cfg(), root)
    assert data.train.x.shape == (6, 1, 28, 28)
    assert "median side 30" in data.note


def test_explicit_size_and_channels_are_respected(tmp_path):
    root = make_folder_dataset(tmp_path / "d", rgb=0.0, labeled=2, unlabeled=3, test=1)
    data = load_folder(data_cfg(image_size=16, channels=3), root)
    assert data.train.x.shape == (6 + 3, 3, 16, 16) and data.test.x.shape == (3, 3, 16, 16)
    x = data.train.x[0]
    assert x.shape == (3, 16, 16) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # gray as RGB
    assert "inferred" not in data.note
    rgb = make_folder_dataset(tmp_path / "rgb", rgb=1.0, labeled=2, unlabeled=0, test=0)
    assert load_folder(data_cfg(channels=1, image_size=40), rgb).train.x[:].shape == (6, 1, 40, 40)


# ------------------------------------------------------------------------------------------- FileImages
@pytest.fixture
def images(tmp_path) -> FileImages:
    root = make_folder_dataset(tmp_path / "d", rgb=0.5, jpeg=0.5, labeled=2, unlabeled=4, test=0)
    return load_folder(data_cfg(image_size=28), root).train.x


def test_file_images_index_like_a_uint8_tensor(images):
    n, c, s = len(images), images.channels, images.size
    assert images.shape == (n, c, s, s) == (10, 3, 28, 28)
    full = images[:]
    assert full.dtype == torch.uint8 and full.shape == (n, c, s, s)
    assert torch.equal(images[3], full[3]) and images[3].shape == (c, s, s)
    assert torch.equal(images[-1], full[-1])
    assert torch.equal(images[2:7:2], full[2:7:2])
    assert images[5:5].shape == (0, c, s, s) and images[5:5].dtype == torch.uint8
    idx = torch.tensor([7, 0, 7, 2])
    assert torch.equal(images[idx], full[idx])
    assert torch.equal(images[np.array([1, 4])], full[[1, 4]])
    assert torch.equal(images[[9, 8]], full[[9, 8]])
    assert images[torch.tensor([], dtype=torch.long)].shape == (0, c, s, s)


def test_file_images_scalar_and_mask_indices(images):
    full = images[:]
    assert torch.equal(images[torch.tensor(4)], full[4])
    assert torch.equal(images[np.int64(4)], full[4])
    mask = torch.zeros(len(images), dtype=torch.bool)
    mask[[1, 6]] = True
    assert torch.equal(images[mask], full[mask])


def test_file_images_match_pil_conversion(images):
    for i in (0, 1, 2):
        with Image.open(images.path(i)) as im:
            expected = np.asarray(im.convert("RGB").resize((28, 28), Image.BILINEAR))
        assert torch.equal(images[i], torch.from_numpy(expected.copy()).permute(2, 0, 1))


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    a = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)  # a ramp over the 16-bit range
    path = tmp_path / "g16.png"
    Image.fromarray(a).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I;16")
    x = FileImages([path], 32, 1)[0][0]
    # Clipping at 255 would turn most of the ramp white.
    assert torch.equal(x, torch.from_numpy((a >> 8).astype(np.uint8)))
    assert FileImages([path], 32, 3)[0].shape == (3, 32, 32)


# ------------------------------------------------------------------------------------------- bad input
def damage_missing_labeled(root: Path) -> Path:
    shutil.rmtree(root / "labeled")
    return root / "labeled"


def damage_no_classes(root: Path) -> Path:
    for d in (root / "labeled").iterdir():
        shutil.rmtree(d)
    (root / "labeled" / "readme.txt").write_text("classes go here")
    return root / "labeled"


def damage_empty_class(root: Path) -> Path:
    (root / "labeled" / "emu").mkdir()
    return root / "labeled" / "emu"


def damage_text_file(root: Path) -> Path:
    (root / "unlabeled" / "batch1" / "notes.txt").write_text("not an image")
    return root / "unlabeled" / "batch1" / "notes.txt"


def damage_zero_byte(root: Path) -> Path:
    (root / "labeled" / "dog" / "empty.png").write_bytes(b"")
    return root / "labeled" / "dog" / "empty.png"


def damage_corrupt(root: Path) -> Path:
    (root / "unlabeled" / "batch2" / "noise.png").write_bytes(np.random.default_rng(0).bytes(300))
    return root / "unlabeled" / "batch2" / "noise.png"


def damage_test_class(root: Path) -> Path:
    save(band_image(0, 3, 28, False, np.random.default_rng(0)), root / "test" / "yak" / "y.png")
    return root / "test"


@pytest.mark.parametrize("damage, words", [
    (damage_missing_labeled, "is missing"), (damage_no_classes, "no class subfolders"),
    (damage_empty_class, "no usable images"), (damage_text_file, "not an image file"),
    (damage_zero_byte, "zero-byte"), (damage_corrupt, "cannot be read as an image"),
    (damage_test_class, "'yak'"),
])
def test_bad_folders_fail_early_naming_the_path(tmp_path, capsys, damage, words):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=8, test=1)
    culprit = damage(root)
    code = cli.main(train_args(root, tmp_path / "run"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(culprit) in err and words in err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("damage", [damage_text_file, damage_zero_byte, damage_corrupt])
def test_bad_file_errors_say_how_to_skip(tmp_path, damage):
    root = make_folder_dataset(tmp_path / "d", labeled=2, unlabeled=4, test=0)
    culprit = damage(root)
    with pytest.raises(DataError, match="skip_bad_files") as e:
        load_folder(data_cfg(), root)
    assert str(e.value).startswith(str(culprit))


def test_missing_folder_is_named(tmp_path, capsys):
    assert cli.main(train_args(tmp_path / "nowhere", tmp_path / "run")) == 2
    assert f"folder:{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err


def test_more_labels_per_class_than_images(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=20, test=0)
    assert cli.main(train_args(root, tmp_path / "run", "--labels-per-class", "5")) == 2
    err = capsys.readouterr().err
    assert "labels_per_class=5" in err and "only 3" in err and "at most 3 per class" in err


def test_truncated_image_fails_naming_the_file(tmp_path, capsys):
    """A file whose header parses but whose pixels are cut off is found when the folder is opened
    (every file is decoded whole), with the file's name, not a bare PIL traceback."""
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=8, test=0, jpeg=0.0)
    victim = root / "labeled" / "owl" / "owl_01.png"
    victim.write_bytes(victim.read_bytes()[:80])
    assert cli.main(train_args(root, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert str(victim) in err and "cannot be read as an image" in err and "truncated" in err
    assert not (tmp_path / "run").exists()


def test_skip_bad_files_trains_lists_them_and_leaves_the_data_alone(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", labeled=4, unlabeled=40, test=2)
    bad = [damage_text_file(root), damage_zero_byte(root), damage_corrupt(root)]
    (root / "test" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    bad.append(root / "test" / "cat" / "broken.jpg")
    before = snapshot(root)
    run = tmp_path / "run"
    assert cli.main(train_args(root, run, "--data.skip_bad_files=true")) == 0, capsys.readouterr().err
    assert "skipped 4 bad files" in capsys.readouterr().out
    listed = (run / "bad_files.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == sorted(map(str, bad))
    assert all("\t" in line and line.split("\t")[1] for line in listed)  # each with its reason
    assert (run / "checkpoints" / "last.pt").is_file() and len(metrics(run)) == 2
    assert snapshot(root) == before  # nothing written into (or touched in) the user's folder


def test_clean_data_writes_no_bad_files_list(tmp_path):
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=20, test=0)
    before = snapshot(root)
    assert cli.main(train_args(root, tmp_path / "run")) == 0
    assert not (tmp_path / "run" / "bad_files.txt").exists()
    assert snapshot(root) == before


# --------------------------------------------------------------------------------------- worker reading
@pytest.fixture(scope="module")
def worker_runs(tmp_path_factory) -> dict[int, Path]:
    """The same run twice: images read in the main process (workers=0) and by DataLoader workers (2)."""
    tmp = tmp_path_factory.mktemp("workers")
    root = make_folder_dataset(tmp / "d", labeled=4, unlabeled=48, test=2)
    for workers in (0, 2):
        assert cli.main(train_args(root, tmp / f"w{workers}", f"--data.workers={workers}")) == 0
    return {w: tmp / f"w{w}" for w in (0, 2)}


def test_training_with_workers_completes(worker_runs):
    records = metrics(worker_runs[2])
    assert [r["epoch"] for r in records] == [1, 2] and (worker_runs[2] / "checkpoints" / "last.pt").is_file()
    assert all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in records)


def test_workers_give_the_same_run_as_the_main_process(worker_runs):
    """The stream hands out the same batches whether images are read in the main process or in DataLoader
    workers, so the whole run (losses, accuracies) is identical."""
    assert metrics(worker_runs[0]) == metrics(worker_runs[2])


def test_worker_batches_equal_main_process_batches(tmp_path):
    """The batches themselves (what the stream hands out) are identical with workers, in order."""
    from ssgan.data.streams import UnlabeledStream
    root = make_folder_dataset(tmp_path / "d", labeled=2, unlabeled=30, test=0)
    images = load_folder(data_cfg(image_size=16), root).train.x
    pool = torch.arange(len(images))
    cpu = torch.device("cpu")
    main = UnlabeledStream(images, pool, 8, seed=3, device=cpu, workers=0)
    work = UnlabeledStream(images, pool, 8, seed=3, device=cpu, workers=2)
    for _ in range(6):  # more than one pass over the 36 images
        assert torch.equal(main.next(), work.next())
    assert torch.equal(main.state_dict()["perm"], work.state_dict()["perm"])
    assert main.state_dict()["pos"] == work.state_dict()["pos"]


def test_the_labeled_folder_is_the_labeled_set_by_default(tmp_path, capsys):
    """A user's folder with 5 labeled images per class trains with no label option (MNIST's 100 does not apply)."""
    root = make_folder_dataset(tmp_path / "d", labeled=5, unlabeled=40, test=0)
    assert cli.main(train_args(root, tmp_path / "run")) == 0
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["request"] == "labeled_rate=1.0" and split["labeled_per_class"] == [5] * len(CLASSES)
    assert len(split["labeled"]) == 5 * len(CLASSES)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["labels"] is None  # the run records that no label count was asked for


def test_a_colour_folder_with_no_flags_gets_cnn32_at_32_pixels_and_its_settings(tmp_path, capsys):
    """--net auto on colour photos: the net with measured CIFAR-10 results, at the size it is built for."""
    root = make_folder_dataset(tmp_path / "d", labeled=3, unlabeled=20, test=2, rgb=1.0, sides=(40, 50))
    run = tmp_path / "run"
    args = ["train", "--data", f"folder:{root}", "--run-dir", str(run), "--epochs", "1", "--max-steps", "2",
            "--batch-size", "8", "--device", "cpu", "--width", "0.125", "--train.sample_every=0"]
    assert cli.main(args) == 0, capsys.readouterr().err
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["net"] == "cnn32" and saved["optim"]["lr"] == 3e-4
    assert saved["method"]["fm_distance"] == "l1" and (saved["data"]["image_size"], saved["data"]["channels"]) == (32, 3)
    assert "image size 32 (what the net is built for" in capsys.readouterr().out


def test_a_cifar_style_folder_reads_train_as_labeled_and_labels_subsample_it(tmp_path, capsys):
    """train/<class>/ + test/<class>/, every image labeled: --labels draws the labeled set, all are unlabeled."""
    src = make_folder_dataset(tmp_path / "src", labeled=8, unlabeled=0, test=2)
    root = tmp_path / "cifar_style"
    shutil.copytree(src / "labeled", root / "train")
    shutil.copytree(src / "test", root / "test")
    run = tmp_path / "run"
    assert cli.main(train_args(root, run, "--labels", "6", "--batch-size", "8")) == 0, capsys.readouterr().err
    split = json.loads((run / "split.json").read_text())
    assert split["request"] == "labels=6" and split["labeled_per_class"] == [2, 2, 2] and split["num_train"] == 24
    assert all(f.startswith("train/") for f in split["files"]["labeled"])
    assert "24 labeled images in 3 classes, 0 unlabeled, 6 test" in capsys.readouterr().out


def test_class_files_are_listed_in_torchvision_s_order(tmp_path):
    """The walk ssgan does itself lists what torchvision's make_dataset listed, in its order, so the
    splits of folder runs made before are the same."""
    from torchvision.datasets.folder import make_dataset
    from ssgan.data.folder import _class_files, _visible
    for rel in ["b/2.png", "b/10.png", "b/sub/a.png", "b/Sub/z.png", "a/x.png", "a/.hidden.png", "a/.d/y.png",
                "a/deep/er/q.png", "c/only.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    index = {"b": 0, "a": 1, "c": 2}
    ours = _class_files(tmp_path, index)
    assert ours == make_dataset(str(tmp_path), index, is_valid_file=_visible(tmp_path), allow_empty=True)
    assert len(ours) == 7 and not any("/." in p for p, _ in ours)
