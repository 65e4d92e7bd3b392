"""Evaluation in chunks: the chunk shrinks with the image size, and the scores do not depend on it."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ssgan.algorithms import build_algorithm
from ssgan.config import MethodConfig
from ssgan.evaluate import EVAL_VALUES, chunk_size, class_logits, error_counts


class Recorder(nn.Module):
    """A fixed linear 'discriminator' (no batch interaction) that records the batch sizes it sees."""

    def __init__(self, in_dim: int, k: int):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(in_dim, k)
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.fc(x.flatten(1)), None


@pytest.mark.parametrize("shape, expected", [((1, 28, 28), 1000), ((3, 32, 32), 255), ((1, 64, 64), 191),
                                             ((3, 512, 512), 1)])
def test_chunks_hold_at_most_the_value_budget(shape, expected):
    images = torch.zeros(5, *shape, dtype=torch.uint8)
    assert chunk_size(images, 1000) == expected
    assert chunk_size(images, 100) == min(100, expected)
    assert expected == 1 or expected * torch.Size(shape).numel() <= EVAL_VALUES


def test_large_images_are_scored_in_smaller_chunks_with_the_same_result():
    torch.manual_seed(1)
    images = torch.randint(0, 256, (450, 1, 64, 64), dtype=torch.uint8)
    labels = torch.randint(0, 10, (450,))
    algo = build_algorithm(MethodConfig(name="supervised"))
    D = Recorder(64 * 64, 10)
    logits = class_logits(D, algo, images, 1000, torch.device("cpu"))
    assert D.sizes == [191, 191, 68]
    with torch.no_grad():
        whole = D.fc(images.float().div(127.5).sub(1).flatten(1))
    torch.testing.assert_close(logits, whole)
    D.sizes.clear()
    errors = error_counts([D], algo, images, labels, 1000, torch.device("cpu"))[0]
    assert D.sizes == [191, 191, 68]
    assert errors == int((whole.argmax(1) != labels).sum())
