"""Loss functions of the semi-supervised GAN, as pure tensor functions that read like their papers.

Shapes: `logits` are (B, K) for the implicit-fake formulation or (B, K+1) with the fake logit last;
`features` are (B, F), the discriminator layer used for feature matching.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def supervised_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-log p(y | x): softmax cross-entropy over all columns of `logits`.

    With K+1 columns this is the recipe's (K+1)-way loss on the extended label (class one-hot, real):
    the fake column is in the softmax and gets target probability zero.
    """
    return F.cross_entropy(logits, y)


def real_fake_bce(fake_logit: torch.Tensor, is_fake: bool) -> torch.Tensor:
    """Sigmoid cross-entropy on the real/fake output (target 1 = fake), as in the recipe's code."""
    target = torch.full_like(fake_logit, 1.0 if is_fake else 0.0)
    return F.binary_cross_entropy_with_logits(fake_logit, target)


def feature_matching(feat_real: torch.Tensor, feat_fake: torch.Tensor, distance: str = "l2") -> torch.Tensor:
    """|| E[f(x_real)] - E[f(G(z))] || over the batch (Salimans et al. 2016, section 3.1).

    `l2` is the mean squared difference of the batch means (the papers' code); `l1` the mean
    absolute difference (the recipe's text).
    """
    diff = feat_real.mean(0) - feat_fake.mean(0)
    if distance == "l2":
        return diff.square().mean()
    if distance == "l1":
        return diff.abs().mean()
    raise ValueError(f"unknown feature-matching distance '{distance}' (l2 or l1)")


def implicit_fake_unsupervised(logits_unl: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Salimans et al. 2016, eq. (5), with the fake logit fixed at zero.

    D(x) = Z(x) / (Z(x) + 1) with Z(x) = sum_k exp(l_k(x)), so with LSE = log Z:
      -log D(x_unl)       = -LSE(l_unl) + softplus(LSE(l_unl))
      -log(1 - D(G(z)))   = softplus(LSE(l_fake))
    averaged, each half weighted 0.5 as in the reference code.
    """
    lse_unl = torch.logsumexp(logits_unl, dim=1)
    lse_fake = torch.logsumexp(logits_fake, dim=1)
    return -0.5 * lse_unl.mean() + 0.5 * F.softplus(lse_unl).mean() + 0.5 * F.softplus(lse_fake).mean()


def softmax_fake_nll(logits: torch.Tensor, is_fake: bool) -> torch.Tensor:
    """Real/fake read from a (K+1)-way softmax, the fake class last (Salimans et al. 2016, eq. 2):
    p(fake | x) = softmax(l)[K]. Returns the mean of -log p(fake) (is_fake) or -log(1 - p(fake)):
      -log p(fake)     = LSE(l) - l_K
      -log(1 - p(fake)) = LSE(l) - LSE(l_0..l_{K-1})
    so real unlabeled images raise the class logits' total mass, as the labeled ones do for their class.
    """
    lse_all = torch.logsumexp(logits, dim=1)
    if is_fake:
        return (lse_all - logits[:, -1]).mean()
    return (lse_all - torch.logsumexp(logits[:, :-1], dim=1)).mean()


def consistency(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Squared distance between the class probabilities of two stochastic passes (dropout, Gaussian
    noise) of D over the same images, summed over classes, averaged over the batch: the Pi-model's
    term (Laine & Aila 2017), which CT-GAN (Wei et al. 2018) adds to the feature-matching GAN's D."""
    return (F.softmax(logits_a, dim=1) - F.softmax(logits_b, dim=1)).square().sum(1).mean()


def pseudo_label(logits: torch.Tensor, logits_target: torch.Tensor, threshold: float) -> torch.Tensor:
    """Cross-entropy of `logits` against the arg-max class of the other view, `logits_target` (no
    gradient through it), counted only where that class's probability is at least `threshold`, and
    averaged over the whole batch: the pseudo-label form of the consistency term (Lee 2013; FixMatch,
    Sohn et al. 2020, threshold 0.95). Unlike the squared distance, it asks a confident view to be
    copied with full confidence, and ignores views that are still unsure."""
    with torch.no_grad():
        conf, target = F.softmax(logits_target.float(), dim=1).max(1)
        mask = (conf >= threshold).to(logits.dtype)
    return (F.cross_entropy(logits, target, reduction="none") * mask).mean()


def pull_away(feat: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity between the feature vectors of distinct samples in a batch
    (Zhao et al. 2017's pull-away term; Dai et al. 2017 put it on D's features of G's batch). It
    is small when G's samples point in different directions of D's feature space, so minimising
    it spreads G's batch out instead of letting feature matching collapse it onto the mean."""
    n = feat.shape[0]
    if n < 2:                      # no pairs: nothing to pull apart
        return feat.sum() * 0.0
    feat = feat.flatten(1)
    unit = F.normalize(feat.to(torch.promote_types(feat.dtype, torch.float32)), dim=1)  # bf16 -> fp32
    cos = unit @ unit.t()
    off = cos.square().sum() - cos.diagonal().square().sum()
    return off / (n * (n - 1))


def conditional_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of p(y | x) over the K classes: minimised on unlabeled images it pushes decision
    boundaries away from them (Grandvalet & Bengio 2005; Dai et al. 2017's Ent term)."""
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(1).mean()
