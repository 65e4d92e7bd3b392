"""`kplus1`: the original recipe (Odena 2016; Salimans et al. 2016 as implemented in the SSGAN recipe).

D has K+1 outputs, the last being the real/fake output.
  D loss = (K+1)-way cross-entropy on labeled images with the extended label (class, real)
         + w * [ -log(1 - p_fake(x_unl)) - log p_fake(G(z)) ]
  G loss = a * -log(1 - p_fake(G(z)))       (non-saturating)
         + b * feature matching of D's pooled features
With `kplus1_consistency` > 0 D also sees each unlabeled batch twice, with fresh dropout and noise,
and is asked for the same class probabilities both times (the Pi-model term `ct` adds to `fm`):
  D loss += c * consistency(pass 1, pass 2), the real/fake term read on pass 1; with
`pseudo_threshold` > 0 the term is pass 1's cross-entropy against pass 2's confident class calls.
With `teacher` = ema the second view is a noisy pass of the EMA of D instead, without gradients
(the mean teacher, Tarvainen & Valpola 2017): the step builds it, this loss reads it the same way.
With `entropy_weight` e > 0, D loss += e * the conditional entropy of the K class probabilities on
the unlabeled batch (Dai et al. 2017's Ent term, as `ct` has): confident class calls off the labels.
p_fake is read per `real_fake`: the sigmoid of the extra output alone (the recipe's code), or its
share of the (K+1)-way softmax (Salimans et al. eq. 2), where an unlabeled real image also raises
the class outputs' total mass. Class predictions read the K class columns only.
"""
from __future__ import annotations

import torch

from .. import losses
from .base import Algorithm, Terms


class KPlus1(Algorithm):
    d_terms = ("sup", "unl_real", "unl_fake")
    g_terms = ("adv", "fm")

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.kplus1_consistency > 0:
            self.unl_views = 2  # logits_unl is (2B, K+1): two noisy passes of the same images
            self.d_terms = self.d_terms + ("cons",)
        if cfg.entropy_weight > 0:
            self.d_terms = self.d_terms + ("ent",)

    def num_logits(self, num_classes: int) -> int:
        return num_classes + 1

    def class_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, :-1]

    def fake_nll(self, logits: torch.Tensor, is_fake: bool) -> torch.Tensor:
        """-log p_fake (is_fake) or -log(1 - p_fake), averaged over the batch."""
        if self.cfg.real_fake == "softmax":
            return losses.softmax_fake_nll(logits, is_fake)
        return losses.real_fake_bce(logits[:, -1], is_fake)

    def d_loss(self, logits_lab, y_lab, logits_unl, logits_fake) -> tuple[torch.Tensor, Terms]:
        sup = losses.supervised_ce(logits_lab, y_lab)              # logits (B, K+1)
        first = logits_unl[:len(logits_unl) // self.unl_views]
        unl_real = self.fake_nll(first, is_fake=False)
        unl_fake = self.fake_nll(logits_fake, is_fake=True)
        total = sup + self.cfg.unsup_weight * (unl_real + unl_fake)
        terms = {"sup": sup, "unl_real": unl_real, "unl_fake": unl_fake}
        if self.unl_views == 2:
            terms["cons"] = self.consistency(self.class_logits(first), self.class_logits(logits_unl[len(first):]))
            total = total + self.cfg.kplus1_consistency * terms["cons"]
        if self.cfg.entropy_weight > 0:
            terms["ent"] = losses.conditional_entropy(self.class_logits(first))
            total = total + self.entropy_weight * terms["ent"]
        return total, terms

    def g_loss(self, logits_fake, feat_real, feat_fake) -> tuple[torch.Tensor, Terms]:
        adv = self.fake_nll(logits_fake, is_fake=False)
        fm = losses.feature_matching(feat_real, feat_fake, self.cfg.fm_distance)
        return self.cfg.adv_weight * adv + self.cfg.fm_weight * fm, {"adv": adv, "fm": fm}
