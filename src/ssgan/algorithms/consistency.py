"""`ct`: the feature-matching GAN (`fm`) plus a consistency term on D's class output.

CT-GAN (Wei et al. 2018, "Improving the Improved Training of Wasserstein GANs", semi-supervised
section) adds to Salimans et al.'s D loss the distance between D's outputs on two stochastic passes
of the same real images. Our D's noise (the mlp's Gaussian noise, the conv nets' dropout) makes each
pass differ, so D sees each unlabeled batch twice and is asked to give it the same class
probabilities both times: the Pi-model of Laine & Aila (2017) inside the GAN. Optionally, the
conditional entropy of p(y | x) on unlabeled images is minimised too (Dai et al. 2017's Ent term).
With `teacher` = ema the second pass is the EMA of D's, without gradients (the mean teacher of
Tarvainen & Valpola 2017, built by the step). With `pseudo_threshold` > 0 the term is the first
pass's cross-entropy against the second's confident class calls (FixMatch's form).
  D loss = fm's D loss (on the first pass) + c * consistency(pass 1, pass 2) + e * entropy(pass 1)
  G loss = feature matching, as fm
"""

from __future__ import annotations

from .. import losses
from .feature_matching import FeatureMatching


class Consistency(FeatureMatching):
    d_terms = ("sup", "unl", "cons", "ent")
    unl_views = 2  # the step passes each unlabeled batch through D twice: logits_unl is (2B, K)

    def d_loss(self, logits_lab, y_lab, logits_unl, logits_fake):
        first, second = logits_unl.chunk(2)
        sup = losses.supervised_ce(logits_lab, y_lab)
        unl = losses.implicit_fake_unsupervised(first, logits_fake)
        cons = self.consistency(first, second)
        ent = losses.conditional_entropy(first)
        total = (
            sup
            + self.cfg.unsup_weight * unl
            + self.cfg.consistency_weight * cons
            + self.entropy_weight * ent
        )
        return total, {"sup": sup, "unl": unl, "cons": cons, "ent": ent}
