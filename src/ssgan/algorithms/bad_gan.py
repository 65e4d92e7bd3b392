"""`badgan`: the feature-matching GAN (`fm`) with Bad GAN's two cheap terms (Dai et al. 2017,
"Good Semi-supervised Learning That Requires a Bad GAN").

Dai et al. argue that a good semi-supervised D needs a *complement* generator: one whose samples
fill the low-density gaps between classes rather than copy the data. Feature matching alone tends
to collapse G's batch onto the mean of the real features; their pull-away term (PT, from Zhao et
al. 2017) keeps G's samples spread out in D's feature space, so they cover more of the gaps. On
D's side, minimising the conditional entropy of p(y | x) on unlabeled images (Ent) pushes the
decision boundaries into those gaps. Their third term, a low-density penalty that needs a
pretrained PixelCNN, is not included.
  D loss = fm's D loss + e * conditional entropy on unlabeled images       (e = method.entropy_weight,
                                                                           from epoch method.entropy_from_epoch)
  G loss = feature matching + p * pull-away term on D's features of G(z)   (p = method.pull_away_weight)
Their code also gives G its own Adam with beta1 0 (`optim.g_beta1`); configs/mnist_badgan.yaml sets it.
"""
from __future__ import annotations

from .. import losses
from .feature_matching import FeatureMatching


class BadGAN(FeatureMatching):
    d_terms = ("sup", "unl", "ent")
    g_terms = ("fm", "pt")

    def d_loss(self, logits_lab, y_lab, logits_unl, logits_fake):
        total, terms = super().d_loss(logits_lab, y_lab, logits_unl, logits_fake)
        ent = losses.conditional_entropy(logits_unl)
        return total + self.entropy_weight * ent, {**terms, "ent": ent}

    def g_loss(self, logits_fake, feat_real, feat_fake):
        total, terms = super().g_loss(logits_fake, feat_real, feat_fake)
        pt = losses.pull_away(feat_fake)
        return total + self.cfg.pull_away_weight * pt, {**terms, "pt": pt}
