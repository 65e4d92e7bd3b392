"""The labeled / unlabeled / validation split: balanced, seeded, disjoint, saved, clear when impossible."""
from __future__ import annotations

import numpy as np
import pytest

from ssgan.data.standard import load_idx
from ssgan.errors import ConfigError, DataError
from ssgan.data.split import Split, check_matches, draw_split, per_class_request


def labels_of(counts: list[int], seed: int = 0) -> np.ndarray:
    """A shuffled label vector with the given number of images per class."""
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(seed).permutation(y)


@pytest.fixture
def y() -> np.ndarray:
    return labels_of([60, 55, 70, 50, 65, 58, 62, 57, 61, 62])  # 600 images, 10 unequal classes


def per_class(y: np.ndarray, idx: list[int], k: int = 10) -> list[int]:
    return np.bincount(y[np.asarray(idx, dtype=int)], minlength=k).tolist()


# -------------------------------------------------------------------------------------------- requests
def test_labels_100_gives_10_per_class(y):
    s = draw_split(y, 10, "toy", 0, labels=100)
    assert len(s.labeled) == 100 and len(set(s.labeled)) == 100
    assert per_class(y, s.labeled) == [10] * 10
    assert s.labeled_per_class == [10] * 10 and s.request == "labels=100"
    assert s.val == [] and s.val_per_class == [0] * 10


def test_labels_per_class(y):
    s = draw_split(y, 10, "toy", 0, labels_per_class=7)
    assert per_class(y, s.labeled) == [7] * 10 and s.request == "labels_per_class=7"


def test_labeled_rate(y):
    s = draw_split(y, 10, "toy", 0, labeled_rate=0.1)
    counts = np.bincount(y)
    assert per_class(y, s.labeled) == [int(np.floor(0.1 * c)) for c in counts]
    assert s.request == "labeled_rate=0.1"


def test_labeled_rate_keeps_at_least_one_per_class_and_one_means_all(y):
    assert per_class(y, draw_split(y, 10, "toy", 0, labeled_rate=0.001).labeled) == [1] * 10
    s = draw_split(y, 10, "toy", 0, labeled_rate=1.0)
    assert s.labeled == list(range(len(y)))


def test_per_class_request_is_checked_against_what_exists():
    want, request = per_class_request(np.array([5, 6, 7]), 15, None, None)
    assert want.tolist() == [5, 5, 5] and request == "labels=15"


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_split_different_seed_different(y):
    a = draw_split(y, 10, "toy", 3, labels=100, val_size=50)
    b = draw_split(y.copy(), 10, "toy", 3, labels=100, val_size=50)
    c = draw_split(y, 10, "toy", 4, labels=100, val_size=50)
    assert a == b
    assert a.labeled != c.labeled and a.val != c.val


def test_split_does_not_use_the_global_rng(y):
    np.random.seed(1)
    a = draw_split(y, 10, "toy", 0, labels=50)
    np.random.seed(2)
    assert draw_split(y, 10, "toy", 0, labels=50) == a


def test_more_labels_keep_the_smaller_labeled_set(y):
    """With the same seed, 20 labels are a subset of 100 labels: label counts compare on nested sets."""
    small = draw_split(y, 10, "toy", 0, labels=20, val_size=30)
    large = draw_split(y, 10, "toy", 0, labels=100, val_size=30)
    assert set(small.labeled) < set(large.labeled) and small.val == large.val


# ------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("val_size", [1, 37, 100, 333])
def test_val_holdout_is_stratified_and_disjoint(y, val_size):
    s = draw_split(y, 10, "toy", 0, labels=50, val_size=val_size)
    assert len(s.val) == val_size == sum(s.val_per_class)
    assert per_class(y, s.val) == s.val_per_class
    expected = np.bincount(y) * val_size / len(y)
    assert np.all(np.abs(np.array(s.val_per_class) - expected) < 1)  # rounded shares of each class
    assert not set(s.val) & set(s.labeled)
    assert per_class(y, s.labeled) == [5] * 10


def test_unlabeled_indices_exclude_val_and_include_labeled(y):
    s = draw_split(y, 10, "toy", 0, labels=100, val_size=60)
    unl = s.unlabeled_indices()
    assert len(unl) == len(y) - 60
    assert not set(unl.tolist()) & set(s.val)
    assert set(s.labeled) <= set(unl.tolist())
    assert sorted(set(unl.tolist()) | set(s.val)) == list(range(len(y)))


# ------------------------------------------------------------------------------------- impossible requests
def test_total_not_divisible_names_nearest_valid_totals(y):
    with pytest.raises(ConfigError) as info:
        draw_split(y, 10, "toy", 0, labels=105)
    msg = str(info.value)
    assert "105" in msg and "10 classes" in msg and "100 or 110" in msg


def test_nearest_totals_are_valid_requests(y):
    with pytest.raises(ConfigError, match="10 or 20"):
        draw_split(y, 10, "toy", 0, labels=15)


@pytest.mark.parametrize("labels", [5, 0, -3])
def test_fewer_labels_than_classes_is_too_few_not_uneven(y, labels):
    with pytest.raises(ConfigError, match=r"too few for 10 classes: at least 10") as info:
        draw_split(y, 10, "toy", 0, labels=labels)
    assert "evenly" not in str(info.value)


def test_more_per_class_than_exist(y):
    with pytest.raises(ConfigError) as info:
        draw_split(y, 10, "toy", 0, labels_per_class=51)
    msg = str(info.value)
    assert "class 3 has only 50" in msg and "51 requested" in msg and "at most 50 per class" in msg


def test_val_holdout_counts_against_what_exists(y):
    # class 3 has exactly 50 images, but a 10% holdout leaves it 45 (and class 1, 55 -> 49 or 50)
    draw_split(y, 10, "toy", 0, labels_per_class=50)
    with pytest.raises(ConfigError, match=r"50 requested \(at most 45 per class here\)"):
        draw_split(y, 10, "toy", 0, labels_per_class=50, val_size=60)


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5])
def test_rate_outside_unit_interval(y, rate):
    with pytest.raises(ConfigError, match=r"must be in \(0, 1\]"):
        draw_split(y, 10, "toy", 0, labeled_rate=rate)


def test_no_request(y):
    with pytest.raises(ConfigError, match="--labels, --labels-per-class or --labeled-rate"):
        draw_split(y, 10, "toy", 0)


def test_labels_per_class_zero(y):
    with pytest.raises(ConfigError, match=">= 1"):
        draw_split(y, 10, "toy", 0, labels_per_class=0)


@pytest.mark.parametrize("val_size", [-1, 600, 700])
def test_val_size_out_of_range(y, val_size):
    with pytest.raises(ConfigError, match="--val-size"):
        draw_split(y, 10, "toy", 0, labels=10, val_size=val_size)


# ---------------------------------------------------------------------------------------- save and load
def test_save_load_round_trip(y, tmp_path):
    s = draw_split(y, 10, "toy", 5, labels=30, val_size=40)
    s.save(tmp_path / "split.json")
    t = Split.load(tmp_path / "split.json")
    assert t == s
    np.testing.assert_array_equal(t.unlabeled_indices(), s.unlabeled_indices())
    assert [p.name for p in tmp_path.iterdir()] == ["split.json"]  # no temp file left beside it


def test_load_rejects_a_broken_file(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(DataError, match="a.json"):
        Split.load(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"dataset": "toy"}')
    with pytest.raises(DataError, match="b.json: not a valid split file"):
        Split.load(tmp_path / "b.json")


def test_check_matches(y, tmp_path):
    s = draw_split(y, 10, "mnist", 0, labels=10)
    check_matches(s, "mnist", len(y), tmp_path / "split.json")  # its own dataset: fine
    with pytest.raises(DataError) as info:
        check_matches(s, "mnist-subset", len(y), tmp_path / "split.json")
    assert "split.json" in str(info.value) and "mnist-subset" in str(info.value)
    with pytest.raises(DataError, match="600 training images"):
        check_matches(s, "mnist", 6000, tmp_path / "split.json")


# ------------------------------------------------------------------------------------------- real MNIST
def test_real_mnist_100_labels_10_per_class(mnist_root):
    y = load_idx("mnist", mnist_root, download=False).train.y.numpy()
    s = draw_split(y, 10, "mnist", 0, labels=100, val_size=5000)
    assert per_class(y, s.labeled) == [10] * 10
    assert len(s.val) == 5000 and not set(s.val) & set(s.labeled)
    assert len(s.unlabeled_indices()) == 55000
