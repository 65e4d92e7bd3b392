"""`kplus1`: the original recipe (Odena 2016; Salimans et al. 2016 as implemented in the SSGAN recipe).

D has K+1 outputs, the last being the real/fake output.
  D loss = (K+1)-way cross-entropy on labeled images with the extended label (class, real)
         + w * [ BCE(fake logit of x_unl -> real) + BCE(fake logit of G(z) -> fake) ]
  G loss = a * BCE(fake logit of G(z) -> real)       (non-saturating)
         + b * feature matching of D's pooled features
Class predictions read the K class columns only.
"""
from __future__ import annotations

import torch

from .. import losses
from .base import Algorithm, Terms


class KPlus1(Algorithm):
    d_terms = ("sup", "unl_real", "unl_fake")
    g_terms = ("adv", "fm")

    def num_logits(self, num_classes: int) -> int:
        return num_classes + 1

    def class_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, :-1]

    def d_loss(self, logits_lab, y_lab, logits_unl, logits_fake) -> tuple[torch.Tensor, Terms]:
        sup = losses.supervised_ce(logits_lab, y_lab)              # logits (B, K+1)
        unl_real = losses.real_fake_bce(logits_unl[:, -1], is_fake=False)
        unl_fake = losses.real_fake_bce(logits_fake[:, -1], is_fake=True)
        total = sup + self.cfg.unsup_weight * (unl_real + unl_fake)
        return total, {"sup": sup, "unl_real": unl_real, "unl_fake": unl_fake}

    def g_loss(self, logits_fake, feat_real, feat_fake) -> tuple[torch.Tensor, Terms]:
        adv = losses.real_fake_bce(logits_fake[:, -1], is_fake=False)
        fm = losses.feature_matching(feat_real, feat_fake, self.cfg.fm_distance)
        return self.cfg.adv_weight * adv + self.cfg.fm_weight * fm, {"adv": adv, "fm": fm}
