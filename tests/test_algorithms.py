"""Every registered method, and the math of each against an explicit formula.

The contract tests run over the ALGORITHMS registry, so a new method is tested the moment it is
registered.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssgan import losses
from ssgan.algorithms import ALGORITHMS, build_algorithm
from ssgan.config import MethodConfig
from ssgan.errors import ConfigError

K, B, FEAT = 4, 6, 7


def inputs(algo, seed: int = 0, dtype=torch.float64):
    """Logits and features as the training loop hands them over, all requiring grad."""
    g = torch.Generator().manual_seed(seed)
    n = algo.num_logits(K)

    def t(*shape):
        return (torch.randn(*shape, generator=g, dtype=dtype) * 2).requires_grad_()

    return {"logits_lab": t(B, n), "y_lab": torch.arange(B) % K, "logits_unl": t(algo.unl_views * (B + 2), n),
            "logits_fake": t(B + 1, n), "feat_real": t(B + 2, FEAT), "feat_fake": t(B + 1, FEAT)}


def d_loss(algo, x):
    if algo.uses_generator:
        return algo.d_loss(x["logits_lab"], x["y_lab"], x["logits_unl"], x["logits_fake"])
    return algo.d_loss(x["logits_lab"], x["y_lab"], None, None)


def assert_finite_scalar(t: torch.Tensor):
    assert isinstance(t, torch.Tensor) and t.dim() == 0
    assert torch.isfinite(t)


# ------------------------------------------------------------------------------------ every method
@pytest.fixture(params=sorted(ALGORITHMS))
def algo(request):
    torch.manual_seed(0)
    return build_algorithm(MethodConfig(fm_distance="l2", name=request.param))


def test_num_logits_covers_the_classes(algo):
    assert algo.num_logits(K) in (K, K + 1)
    assert algo.num_logits(10) - 10 == algo.num_logits(K) - K   # a fixed number of extra outputs


def test_class_logits_has_one_column_per_class(algo):
    logits = torch.randn(B, algo.num_logits(K))
    out = algo.class_logits(logits)
    assert out.shape == (B, K)
    assert torch.equal(out, logits[:, :K])                   # the class columns come first


def test_d_loss_is_a_finite_scalar_with_every_named_term(algo):
    x = inputs(algo)
    total, terms = d_loss(algo, x)
    assert_finite_scalar(total)
    assert algo.d_terms and set(terms) == set(algo.d_terms)
    for name in algo.d_terms:
        assert_finite_scalar(terms[name])
    total.backward()
    assert x["logits_lab"].grad is not None and torch.isfinite(x["logits_lab"].grad).all()
    assert x["logits_lab"].grad.abs().sum() > 0               # the labels always teach D something
    if algo.uses_generator:                                   # and so do the unlabeled and generated batches
        assert x["logits_unl"].grad.abs().sum() > 0
        assert x["logits_fake"].grad.abs().sum() > 0


def test_g_loss_is_a_finite_scalar_with_every_named_term(algo):
    if not algo.uses_generator:
        assert algo.g_terms == ()
        return
    x = inputs(algo, seed=1)
    total, terms = algo.g_loss(x["logits_fake"], x["feat_real"], x["feat_fake"])
    assert_finite_scalar(total)
    assert algo.g_terms and set(terms) == set(algo.g_terms)
    for name in algo.g_terms:
        assert_finite_scalar(terms[name])
    total.backward()
    # G learns through the generated batch only: the fake logits and/or the fake features
    grads = [x[k].grad for k in ("logits_fake", "feat_fake") if x[k].grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_losses_work_in_float32(algo):
    x = inputs(algo, seed=2, dtype=torch.float32)
    total, _ = d_loss(algo, x)
    assert total.dtype == torch.float32 and torch.isfinite(total)


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        build_algorithm(MethodConfig(fm_distance="l2", name="kplus2"))
    assert all(name in str(e.value) for name in ALGORITHMS)


# --------------------------------------------------------------------------------------- kplus1
def test_kplus1_reads_classes_from_all_but_the_last_column():
    algo = build_algorithm(MethodConfig(fm_distance="l2", name="kplus1"))
    assert algo.num_logits(K) == K + 1
    logits = torch.arange(B * (K + 1), dtype=torch.float32).view(B, K + 1)
    assert torch.equal(algo.class_logits(logits), logits[:, :-1])


@pytest.mark.parametrize("real_fake", ["softmax", "sigmoid"])
def test_kplus1_losses_match_their_formulas(real_fake):
    torch.manual_seed(0)
    cfg = MethodConfig(name="kplus1", unsup_weight=0.7, adv_weight=0.3, fm_weight=2.0, fm_distance="l1",
                       real_fake=real_fake)
    algo = build_algorithm(cfg)
    x = inputs(algo, seed=3)
    with torch.no_grad():
        lab, unl, fake = x["logits_lab"], x["logits_unl"], x["logits_fake"]
        p_fake = (lambda l: l.softmax(1)[:, -1]) if real_fake == "softmax" else (lambda l: torch.sigmoid(l[:, -1]))
        sup = -torch.log_softmax(lab, 1)[torch.arange(B), x["y_lab"]].mean()          # (K+1)-way
        unl_real = -torch.log(1 - p_fake(unl)).mean()                                   # target real
        unl_fake = -torch.log(p_fake(fake)).mean()                                      # target fake
        adv = -torch.log(1 - p_fake(fake)).mean()                                       # G: call it real
        fm = (x["feat_real"].mean(0) - x["feat_fake"].mean(0)).abs().mean()
        total_d, terms_d = d_loss(algo, x)
        total_g, terms_g = algo.g_loss(fake, x["feat_real"], x["feat_fake"])
    torch.testing.assert_close(terms_d["sup"], sup)
    torch.testing.assert_close(terms_d["unl_real"], unl_real)
    torch.testing.assert_close(terms_d["unl_fake"], unl_fake)
    torch.testing.assert_close(total_d, sup + 0.7 * (unl_real + unl_fake))
    torch.testing.assert_close(terms_g["adv"], adv)
    torch.testing.assert_close(terms_g["fm"], fm)
    torch.testing.assert_close(total_g, 0.3 * adv + 2.0 * fm)


# ------------------------------------------------------------------------------------------- fm
def test_fm_has_k_logits_and_reads_them_all():
    algo = build_algorithm(MethodConfig(fm_distance="l2", name="fm"))
    assert algo.num_logits(K) == K
    assert algo.num_logits(10) == 10


@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_fm_d_loss_equals_explicit_k_plus_1_cross_entropy_with_a_zero_fake_column(scale):
    """Salimans et al.: p(y | x) over K+1 classes with l_{K+1} = 0.

    labeled: -log p(y | x, y < K+1) = -log(p_y / (1 - p_fake))
    unlabeled: -log(1 - p_fake); generated: -log p_fake; the unsupervised half-weighted mean of both.
    """
    torch.manual_seed(0)
    algo = build_algorithm(MethodConfig(fm_distance="l2", name="fm", unsup_weight=0.6))
    x = inputs(algo, seed=4)
    lab, unl, fake = (x[k].detach() * scale for k in ("logits_lab", "logits_unl", "logits_fake"))

    def p_explicit(logits):                                   # (B, K) -> (B, K+1) with a zero column
        return F.softmax(torch.cat([logits, torch.zeros(len(logits), 1, dtype=logits.dtype)], 1), 1)

    p_lab, p_unl, p_fake = p_explicit(lab), p_explicit(unl), p_explicit(fake)
    sup = -torch.log(p_lab[torch.arange(B), x["y_lab"]] / (1 - p_lab[:, K])).mean()
    unl_loss = 0.5 * -torch.log(1 - p_unl[:, K]).mean() + 0.5 * -torch.log(p_fake[:, K]).mean()

    total, terms = algo.d_loss(lab, x["y_lab"], unl, fake)
    torch.testing.assert_close(terms["sup"], sup, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(terms["unl"], unl_loss, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(total, sup + 0.6 * unl_loss, rtol=1e-9, atol=1e-9)
    # the predicted class is the same whether read from K logits or from the explicit K+1 softmax
    assert torch.equal(algo.class_logits(lab).argmax(1), p_lab[:, :K].argmax(1))


def test_fm_g_loss_is_weighted_feature_matching():
    algo = build_algorithm(MethodConfig(fm_distance="l2", name="fm", fm_weight=3.0))
    x = inputs(algo, seed=5)
    total, terms = algo.g_loss(x["logits_fake"], x["feat_real"], x["feat_fake"])
    fm = (x["feat_real"].mean(0) - x["feat_fake"].mean(0)).square().mean()
    torch.testing.assert_close(terms["fm"], fm)
    torch.testing.assert_close(total, 3.0 * fm)


# ----------------------------------------------------------------------------------- supervised
def test_supervised_needs_no_generator_and_ignores_unlabeled_inputs():
    algo = build_algorithm(MethodConfig(fm_distance="l2", name="supervised"))
    assert algo.uses_generator is False
    x = inputs(algo, seed=6)
    total, terms = algo.d_loss(x["logits_lab"], x["y_lab"], None, None)
    torch.testing.assert_close(total, F.cross_entropy(x["logits_lab"], x["y_lab"]))
    assert set(terms) == {"sup"}


def test_kplus1_softmax_real_fake_uses_the_k_plus_1_softmax():
    """With real_fake=softmax, a real unlabeled image's loss is -log(1 - p_fake) under the (K+1)-way
    softmax, so it depends on the class logits too (the sigmoid form sees only the last column)."""
    torch.manual_seed(0)
    soft = build_algorithm(MethodConfig(fm_distance="l2", name="kplus1", real_fake="softmax"))
    sig = build_algorithm(MethodConfig(fm_distance="l2", name="kplus1", real_fake="sigmoid"))
    logits = torch.randn(6, 5)
    p_fake = logits.softmax(1)[:, -1]
    torch.testing.assert_close(soft.fake_nll(logits, is_fake=False), -(1 - p_fake).log().mean())
    torch.testing.assert_close(soft.fake_nll(logits, is_fake=True), -p_fake.log().mean())
    torch.testing.assert_close(sig.fake_nll(logits, is_fake=True), -torch.sigmoid(logits[:, -1]).log().mean())
    shifted = logits.clone()
    shifted[:, :-1] += 1.0                                        # more class mass: "more real"
    assert soft.fake_nll(shifted, is_fake=False) < soft.fake_nll(logits, is_fake=False)
    assert torch.equal(sig.fake_nll(shifted, is_fake=False), sig.fake_nll(logits, is_fake=False))


# -------------------------------------------------------------------------------------------------- ct
def test_consistency_and_entropy_match_naive_formulas():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(5, K, generator=g, dtype=torch.float64), torch.randn(5, K, generator=g, dtype=torch.float64)
    cons, ent = 0.0, 0.0
    for i in range(5):
        pa = [math.exp(v) for v in a[i].tolist()]
        pb = [math.exp(v) for v in b[i].tolist()]
        pa, pb = [v / sum(pa) for v in pa], [v / sum(pb) for v in pb]
        cons += sum((x - y) ** 2 for x, y in zip(pa, pb)) / 5
        ent += -sum(x * math.log(x) for x in pa) / 5
    assert losses.consistency(a, b).item() == pytest.approx(cons, rel=1e-12)
    assert losses.conditional_entropy(a).item() == pytest.approx(ent, rel=1e-12)
    assert losses.consistency(a, a).item() == 0.0
    assert losses.conditional_entropy(torch.zeros(2, K)).item() == pytest.approx(math.log(K))


def test_pseudo_label_term_matches_its_naive_formula_and_only_the_first_view_gets_gradient():
    a = torch.tensor([[0.1, 0.2, -0.3, 0.0], [1.0, 0.0, 0.5, -1.0], [0.0, 0.3, 0.0, 0.1]],
                     dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[9.0, 0.0, 0.0, 0.0], [0.0, 0.4, 0.0, 0.3], [0.0, 0.0, 0.0, 8.0]],
                     dtype=torch.float64, requires_grad=True)     # confident, unsure, confident
    naive = 0.0
    for i in range(3):
        pb = [math.exp(v) for v in b[i].tolist()]
        conf, cls = max(pb) / sum(pb), pb.index(max(pb))
        if conf >= 0.95:
            naive += -(a[i, cls].item() - math.log(sum(math.exp(v) for v in a[i].tolist())))
    naive /= 3                                                      # averaged over the whole batch
    loss = losses.pseudo_label(a, b, 0.95)
    assert loss.item() == pytest.approx(naive, rel=1e-12) and naive > 0
    loss.backward()
    assert b.grad is None and a.grad[1].abs().sum() == 0 and a.grad[0].abs().sum() > 0  # unsure row: no pull
    assert losses.pseudo_label(a, b, 0.9999999).item() == 0.0       # nothing that confident: no term


def test_pseudo_threshold_switches_the_consistency_term_of_ct_and_kplus1_and_needs_one():
    torch.manual_seed(0)
    first, second = torch.randn(B, K + 1) * 4, torch.randn(B, K + 1) * 4
    ct = build_algorithm(MethodConfig(fm_distance="l2", name="ct", pseudo_threshold=0.6))
    _, terms = ct.d_loss(torch.randn(B, K), torch.arange(B) % K, torch.cat([first[:, :K], second[:, :K]]),
                         torch.randn(B, K))
    torch.testing.assert_close(terms["cons"], losses.pseudo_label(first[:, :K], second[:, :K], 0.6))
    kp = build_algorithm(MethodConfig(fm_distance="l2", name="kplus1", kplus1_consistency=2.0, pseudo_threshold=0.6))
    _, terms = kp.d_loss(torch.randn(B, K + 1), torch.arange(B) % K, torch.cat([first, second]), torch.randn(B, K + 1))
    torch.testing.assert_close(terms["cons"], losses.pseudo_label(first[:, :K], second[:, :K], 0.6))
    assert terms["cons"] != losses.consistency(first[:, :K], second[:, :K])
    for cfg in (MethodConfig(name="fm", pseudo_threshold=0.95), MethodConfig(name="kplus1", pseudo_threshold=0.95)):
        with pytest.raises(ConfigError, match="pseudo_threshold"):
            build_algorithm(cfg)


def test_ct_d_loss_is_fm_on_the_first_pass_plus_weighted_consistency_and_entropy():
    torch.manual_seed(0)
    ct = build_algorithm(MethodConfig(fm_distance="l2", name="ct", consistency_weight=3.0, entropy_weight=0.5))
    fm = build_algorithm(MethodConfig(fm_distance="l2", name="fm"))
    assert ct.unl_views == 2 and fm.unl_views == 1
    lab, y, fake = torch.randn(B, K), torch.arange(B) % K, torch.randn(B, K)
    first, second = torch.randn(B, K), torch.randn(B, K)
    total, terms = ct.d_loss(lab, y, torch.cat([first, second]), fake)
    fm_total, _ = fm.d_loss(lab, y, first, fake)
    expected = fm_total + 3.0 * losses.consistency(first, second) + 0.5 * losses.conditional_entropy(first)
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(terms["cons"], losses.consistency(first, second))


def test_kplus1_consistency_is_off_by_default_and_adds_the_weighted_term_on_two_passes():
    torch.manual_seed(0)
    plain = build_algorithm(MethodConfig(fm_distance="l2", name="kplus1"))
    ct = build_algorithm(MethodConfig(fm_distance="l2", name="kplus1", kplus1_consistency=2.0))
    assert plain.unl_views == 1 and "cons" not in plain.d_terms          # the recipe, unchanged
    assert ct.unl_views == 2 and ct.d_terms[-1] == "cons"
    lab, y, fake = torch.randn(B, K + 1), torch.arange(B) % K, torch.randn(B, K + 1)
    first, second = torch.randn(B, K + 1), torch.randn(B, K + 1)
    total, terms = ct.d_loss(lab, y, torch.cat([first, second]), fake)
    plain_total, _ = plain.d_loss(lab, y, first, fake)                  # real/fake read on the first pass
    cons = losses.consistency(first[:, :K], second[:, :K])              # class probabilities only
    torch.testing.assert_close(terms["cons"], cons)
    torch.testing.assert_close(total, plain_total + 2.0 * cons)


def test_kplus1_entropy_term_is_off_by_default_and_reads_the_class_outputs_of_the_first_pass():
    torch.manual_seed(0)
    plain = build_algorithm(MethodConfig(fm_distance="l2", name="kplus1", kplus1_consistency=2.0))
    ent = build_algorithm(MethodConfig(fm_distance="l2", name="kplus1", kplus1_consistency=2.0, entropy_weight=0.5))
    assert "ent" not in plain.d_terms and ent.d_terms[-1] == "ent"
    lab, y, fake = torch.randn(B, K + 1), torch.arange(B) % K, torch.randn(B, K + 1)
    first, second = torch.randn(B, K + 1), torch.randn(B, K + 1)
    total, terms = ent.d_loss(lab, y, torch.cat([first, second]), fake)
    plain_total, _ = plain.d_loss(lab, y, torch.cat([first, second]), fake)
    p = torch.softmax(first[:, :K], dim=1)                               # the naive formula, K classes only
    naive = -(p * p.log()).sum(1).mean()
    torch.testing.assert_close(terms["ent"], naive)
    torch.testing.assert_close(total, plain_total + 0.5 * naive)


# ---------------------------------------------------------------------------------------------- badgan
def test_pull_away_matches_its_naive_formula_and_falls_as_samples_spread():
    g = torch.Generator().manual_seed(5)
    f = torch.randn(5, 3, generator=g, dtype=torch.float64)
    rows = f.tolist()
    naive = 0.0
    for i in range(5):
        for j in range(5):
            if i != j:
                dot = sum(a * b for a, b in zip(rows[i], rows[j]))
                ni, nj = math.sqrt(sum(a * a for a in rows[i])), math.sqrt(sum(b * b for b in rows[j]))
                naive += (dot / (ni * nj)) ** 2
    naive /= 5 * 4
    assert losses.pull_away(f).item() == pytest.approx(naive, rel=1e-12)
    same = torch.ones(4, 3, dtype=torch.float64)                 # one direction: cosines 1
    orth = torch.eye(3, dtype=torch.float64) * torch.tensor([[2.0], [0.5], [7.0]])  # scale does not matter
    assert losses.pull_away(same).item() == pytest.approx(1.0)
    assert losses.pull_away(orth).item() == 0.0
    assert losses.pull_away(f[:1]).item() == 0.0                 # a batch of one has no pairs


def test_badgan_adds_weighted_entropy_to_fms_d_loss_and_weighted_pull_away_to_its_g_loss():
    torch.manual_seed(0)
    bad = build_algorithm(MethodConfig(fm_distance="l2", name="badgan", entropy_weight=0.1, pull_away_weight=0.8))
    fm = build_algorithm(MethodConfig(fm_distance="l2", name="fm"))
    lab, y, unl, fake = torch.randn(B, K), torch.arange(B) % K, torch.randn(B + 2, K), torch.randn(B, K)
    total, terms = bad.d_loss(lab, y, unl, fake)
    fm_total, _ = fm.d_loss(lab, y, unl, fake)
    torch.testing.assert_close(total, fm_total + 0.1 * losses.conditional_entropy(unl))
    assert set(terms) == set(bad.d_terms)
    feat_real, feat_fake = torch.randn(B + 2, FEAT), torch.randn(B, FEAT)
    g_total, g_terms = bad.g_loss(fake, feat_real, feat_fake)
    fm_g, _ = fm.g_loss(fake, feat_real, feat_fake)
    torch.testing.assert_close(g_total, fm_g + 0.8 * losses.pull_away(feat_fake))
    assert set(g_terms) == set(bad.g_terms)
    off = build_algorithm(MethodConfig(fm_distance="l2", name="badgan", entropy_weight=0.0, pull_away_weight=0.0))
    torch.testing.assert_close(off.d_loss(lab, y, unl, fake)[0], fm_total)     # both off: exactly fm
    torch.testing.assert_close(off.g_loss(fake, feat_real, feat_fake)[0], fm_g)


@pytest.mark.parametrize("name", ["badgan", "ct", "kplus1"])
def test_the_entropy_term_counts_only_from_entropy_from_epoch(name):
    """Weight 0 in the epochs before method.entropy_from_epoch (counted from 1), its weight from then on."""
    torch.manual_seed(0)
    late = build_algorithm(MethodConfig(fm_distance="l2", name=name, entropy_weight=0.5, entropy_from_epoch=3))
    off = build_algorithm(MethodConfig(fm_distance="l2", name=name, entropy_weight=0.0))
    k = late.num_logits(K)
    views = 2 if name == "ct" else 1
    lab, y, unl, fake = torch.randn(B, k), torch.arange(B) % K, torch.randn(views * B, k), torch.randn(B, k)
    ent = losses.conditional_entropy(late.class_logits(unl[:B]))
    off_total = off.d_loss(lab, y, unl, fake)[0]
    for epoch, weight in ((0, 0.0), (1, 0.0), (2, 0.5), (7, 0.5)):     # the loop's epochs count from 0
        late.start_epoch(epoch)
        assert late.entropy_weight == weight
        total, terms = late.d_loss(lab, y, unl, fake)
        torch.testing.assert_close(terms["ent"], ent)                     # logged in every epoch
        torch.testing.assert_close(total, off_total + weight * ent)
