"""`fm`: Salimans et al. 2016, "Improved Techniques for Training GANs", semi-supervised section.

D has K logits; the fake class has its logit fixed at 0, so D(x) = Z(x) / (Z(x) + 1).
  D loss = cross-entropy on labeled images + w * unsupervised loss (eq. 5, see losses.py)
  G loss = feature matching alone (mean squared difference of batch means of D's last hidden layer)
"""
from __future__ import annotations

from .. import losses
from .base import Algorithm, Terms


class FeatureMatching(Algorithm):
    d_terms = ("sup", "unl")
    g_terms = ("fm",)

    def d_loss(self, logits_lab, y_lab, logits_unl, logits_fake):
        sup = losses.supervised_ce(logits_lab, y_lab)             # logits (B, K)
        unl = losses.implicit_fake_unsupervised(logits_unl, logits_fake)
        return sup + self.cfg.unsup_weight * unl, {"sup": sup, "unl": unl}

    def g_loss(self, logits_fake, feat_real, feat_fake) -> tuple:
        fm = losses.feature_matching(feat_real, feat_fake, self.cfg.fm_distance)
        terms: Terms = {"fm": fm}
        return self.cfg.fm_weight * fm, terms
