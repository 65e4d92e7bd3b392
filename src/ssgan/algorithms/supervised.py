"""`supervised`: the same discriminator trained on the labeled images alone.

The baseline that shows what the unlabeled data and the generator add: same network, optimiser,
split and number of steps, but no generator and no unlabeled loss.
"""
from __future__ import annotations

from .. import losses
from .base import Algorithm


class Supervised(Algorithm):
    uses_generator = False
    d_terms = ("sup",)

    def d_loss(self, logits_lab, y_lab, logits_unl=None, logits_fake=None):
        sup = losses.supervised_ce(logits_lab, y_lab)
        return sup, {"sup": sup}
