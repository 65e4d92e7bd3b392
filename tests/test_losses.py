"""Each loss against its naive formula, computed in 60-digit decimal arithmetic (no overflow, no tricks)."""
from __future__ import annotations

import math
from decimal import Decimal, getcontext

import pytest
import torch

from ssgan import losses

getcontext().prec = 60

# Moderate logits, and logits far beyond where exp() overflows in float32 (88) or float64 (709).
SCALES = [3.0, 50.0, 1000.0]


def D(x) -> Decimal:
    return Decimal(repr(float(x)))


def dmean(values) -> Decimal:
    values = list(values)
    return sum(values, Decimal(0)) / len(values)


def naive_softmax(row) -> list[Decimal]:
    exps = [D(v).exp() for v in row]
    z = sum(exps, Decimal(0))
    return [e / z for e in exps]


def naive_sigmoid(v) -> Decimal:
    return 1 / (1 + (-D(v)).exp())


def close(actual: torch.Tensor, expected: Decimal, rel: float = 1e-12, abs_: float = 1e-12) -> bool:
    return float(actual) == pytest.approx(float(expected), rel=rel, abs=abs_)


def logits(b: int, k: int, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, generator=g, dtype=torch.float64) * scale


@pytest.mark.parametrize("scale", SCALES)
def test_supervised_ce_is_minus_log_softmax_of_the_label_over_k_plus_1_columns(scale):
    torch.manual_seed(0)
    x = logits(6, 5, scale, seed=1)                      # (B, K+1), fake column last
    y = torch.tensor([0, 1, 2, 3, 3, 0])                 # labels never point at the fake column
    expected = dmean(-naive_softmax(row)[t].ln() for row, t in zip(x.tolist(), y.tolist()))
    got = losses.supervised_ce(x, y)
    assert torch.isfinite(got)
    assert close(got, expected)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("is_fake", [False, True])
def test_real_fake_bce_is_the_sigmoid_cross_entropy(scale, is_fake):
    torch.manual_seed(0)
    fake_logit = logits(8, 1, scale, seed=2)[:, 0]
    t = 1 if is_fake else 0
    # -[t log s(v) + (1 - t) log(1 - s(v))], with 1 - s(v) written s(-v) so 60 digits suffice at v = 1000
    expected = dmean(-(t * naive_sigmoid(v).ln() + (1 - t) * naive_sigmoid(-v).ln())
                     for v in fake_logit.tolist())
    got = losses.real_fake_bce(fake_logit, is_fake=is_fake)
    assert torch.isfinite(got)
    assert close(got, expected)


def test_real_fake_bce_targets_point_the_right_way():
    confident_fake = torch.full((4,), 20.0, dtype=torch.float64)
    assert losses.real_fake_bce(confident_fake, is_fake=True) < 1e-6
    assert losses.real_fake_bce(confident_fake, is_fake=False) > 19.0


@pytest.mark.parametrize("distance", ["l2", "l1"])
def test_feature_matching_compares_batch_means(distance):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    feat_real = torch.randn(7, 5, generator=g, dtype=torch.float64)
    feat_fake = torch.randn(9, 5, generator=g, dtype=torch.float64) + 0.5   # batch sizes may differ
    mean_r = [sum(feat_real[:, j].tolist()) / 7 for j in range(5)]
    mean_f = [sum(feat_fake[:, j].tolist()) / 9 for j in range(5)]
    diffs = [a - b for a, b in zip(mean_r, mean_f)]
    expected = sum(d * d for d in diffs) / 5 if distance == "l2" else sum(abs(d) for d in diffs) / 5
    got = losses.feature_matching(feat_real, feat_fake, distance)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_feature_matching_is_zero_for_equal_means_and_rejects_unknown_distances():
    torch.manual_seed(0)
    f = torch.randn(6, 4, dtype=torch.float64)
    assert float(losses.feature_matching(f, f.flip(0))) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="l2 or l1"):
        losses.feature_matching(f, f, "cosine")


def explicit_zero_column_loss(logits_unl: torch.Tensor, logits_fake: torch.Tensor) -> Decimal:
    """The (K+1)-way formulation with a zero fake column: p_fake = softmax([l, 0])[K].

    unlabeled: -log(1 - p_fake); generated: -log p_fake; each averaged, each weighted 0.5.
    """
    k = logits_unl.shape[1]
    unl = dmean(-(1 - naive_softmax(row + [0.0])[k]).ln() for row in logits_unl.tolist())
    fake = dmean(-naive_softmax(row + [0.0])[k].ln() for row in logits_fake.tolist())
    return Decimal("0.5") * unl + Decimal("0.5") * fake


@pytest.mark.parametrize("scale", SCALES)
def test_implicit_fake_loss_equals_explicit_k_plus_1_with_a_zero_fake_column(scale):
    torch.manual_seed(0)
    logits_unl = logits(6, 4, scale, seed=4)
    logits_fake = logits(5, 4, scale, seed=5)
    expected = explicit_zero_column_loss(logits_unl, logits_fake)
    got = losses.implicit_fake_unsupervised(logits_unl, logits_fake)
    assert torch.isfinite(got)
    assert close(got, expected, rel=1e-11)


def test_implicit_fake_loss_extremes_are_stable():
    """Confident right answers cost ~0, confident wrong ones cost about the logit, never inf/nan."""
    big = torch.full((3, 4), 300.0, dtype=torch.float64)
    small = torch.full((3, 4), -500.0, dtype=torch.float64)
    assert float(losses.implicit_fake_unsupervised(big, small)) == pytest.approx(0.0, abs=1e-12)
    # unlabeled called fake: -log(1 - p_fake) ~ 500 - log 4; fake called real: -log p_fake ~ 300 + log 4
    wrong = losses.implicit_fake_unsupervised(small, big)
    log4 = math.log(4.0)
    assert float(wrong) == pytest.approx(0.5 * (500.0 - log4) + 0.5 * (300.0 + log4), rel=1e-12)


@pytest.mark.parametrize("fn", ["supervised_ce", "real_fake_bce", "implicit_fake_unsupervised"])
def test_float32_losses_and_gradients_stay_finite_for_huge_logits(fn):
    torch.manual_seed(0)
    x = (torch.randn(8, 5) * 1e4).requires_grad_()
    if fn == "supervised_ce":
        out = losses.supervised_ce(x, torch.arange(8) % 5)
    elif fn == "real_fake_bce":
        out = losses.real_fake_bce(x[:, -1], is_fake=True) + losses.real_fake_bce(x[:, 0], is_fake=False)
    else:
        out = losses.implicit_fake_unsupervised(x[:4], x[4:])
    out.backward()
    assert torch.isfinite(out)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("is_fake", [True, False])
def test_softmax_fake_nll_is_the_k_plus_1_cross_entropy_on_the_fake_class(scale, is_fake):
    torch.manual_seed(0)
    logits = (torch.rand(5, 4) * 2 - 1) * scale                 # K = 3 classes + the fake class
    got = losses.softmax_fake_nll(logits.double(), is_fake=is_fake)
    p_fake = [naive_softmax(row)[-1] for row in logits.tolist()]
    want = dmean(-(p if is_fake else 1 - p).ln() if (p if is_fake else 1 - p) > 0 else Decimal(10 ** 9)
                 for p in p_fake)
    if want < Decimal(10 ** 8):                                  # finite in exact arithmetic
        assert float(got) == pytest.approx(float(want), rel=1e-9, abs=1e-9)
    assert torch.isfinite(got)
