"""What a method is: the number of logits D needs, its D loss, its G loss and how to read classes.

The training loop owns optimisers, devices, cadence and logging; it never tests a method's name.
A new method is one file with a subclass plus one line in `ALGORITHMS`.
"""
from __future__ import annotations

import torch

from .. import losses
from ..config import MethodConfig

Terms = dict[str, torch.Tensor]


class Algorithm:
    uses_generator: bool = True
    d_terms: tuple[str, ...] = ()   # names of the D loss terms, in the order they are logged
    g_terms: tuple[str, ...] = ()
    unl_views: int = 1              # passes of D over each unlabeled batch; logits_unl is (views * B, K)

    def __init__(self, cfg: MethodConfig):
        self.cfg = cfg
        self.epoch = 0              # the epoch in progress, from 0; the loop sets it (start_epoch)

    def start_epoch(self, epoch: int) -> None:
        """Called by the loop before each epoch (from 0), so that a term can start late."""
        self.epoch = epoch

    @property
    def entropy_weight(self) -> float:
        """The entropy term's weight in this epoch: method.entropy_weight from epoch
        method.entropy_from_epoch on (counted from 1), 0 before it."""
        return self.cfg.entropy_weight if self.epoch + 1 >= self.cfg.entropy_from_epoch else 0.0

    def num_logits(self, num_classes: int) -> int:
        return num_classes

    def class_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, num_logits) -> (B, K): the columns class predictions are read from."""
        return logits

    def d_loss(self, logits_lab: torch.Tensor, y_lab: torch.Tensor, logits_unl: torch.Tensor | None,
               logits_fake: torch.Tensor | None) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    def g_loss(self, logits_fake: torch.Tensor, feat_real: torch.Tensor,
               feat_fake: torch.Tensor) -> tuple[torch.Tensor, Terms]:
        raise NotImplementedError

    def consistency(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """The consistency term between two views' class logits (B, K): the squared distance of their
        probabilities, or with `pseudo_threshold` > 0 the first view against the second's confident
        class calls (the second is the mean teacher's view when there is one)."""
        if self.cfg.pseudo_threshold > 0:
            return losses.pseudo_label(first, second, self.cfg.pseudo_threshold)
        return losses.consistency(first, second)
