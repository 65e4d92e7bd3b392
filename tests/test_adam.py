"""ssgan's Adam (training/adam.py) against torch.optim.Adam(fused=True), and the rate schedule
against torch's LambdaLR: both replace torch.optim in training, and must give the same numbers."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

from ssgan import config as C
from ssgan.training.adam import Adam
from ssgan.training.run import RateSchedule, lr_factor


def twin_models(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    b.load_state_dict(a.state_dict())
    return a, b


def set_grads(model: nn.Module, k: int, skip: int | None = None) -> None:
    """Gradients drawn from step k's seed; parameter `skip` gets none (torch then leaves it alone)."""
    g = torch.Generator().manual_seed(1000 + k)
    for i, p in enumerate(model.parameters()):
        p.grad = None if i == skip else torch.randn(p.shape, generator=g) * (1 + i)


def run_steps(opt, model, steps: range, lrs) -> None:
    for k in steps:
        opt.param_groups[0]["lr"] = lrs[k]
        set_grads(model, k, skip=1 if k % 3 == 0 else None)
        opt.step()
        opt.zero_grad(set_to_none=True)


def through_a_file(state: dict) -> dict:
    """As a checkpoint carries it (torch's load_state_dict keeps the tensors it is given)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


LRS = [3e-3 * (1 - k / 40) for k in range(30)]


def test_the_update_is_torch_s_fused_adam_bit_for_bit():
    a, b = twin_models()
    ours = Adam(list(a.parameters()), lr=3e-3, betas=(0.5, 0.999), eps=1e-4)
    theirs = torch.optim.Adam(list(b.parameters()), lr=3e-3, betas=(0.5, 0.999), eps=1e-4, fused=True)
    run_steps(ours, a, range(30), LRS)
    run_steps(theirs, b, range(30), LRS)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(a.parameters()), twin_models()[0][0].weight)  # it did move
    mine, torch_s = ours.state_dict(), theirs.state_dict()
    assert mine["param_groups"] == torch_s["param_groups"]
    for i in torch_s["state"]:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(mine["state"][i][key], torch_s["state"][i][key]), (i, key)
    assert mine["state"][1]["step"].item() == 20 and mine["state"][0]["step"].item() == 30  # skipped every third


@pytest.mark.parametrize("direction", ["torch -> ours", "ours -> torch"])
def test_a_state_dict_moves_between_the_two_and_training_goes_on_identically(direction):
    """Checkpoints written with torch.optim.Adam (before ssgan had its own) resume, and the other way."""
    a, b = twin_models()
    first = (torch.optim.Adam(list(a.parameters()), lr=1e-3, betas=(0.5, 0.999), eps=1e-8, fused=True)
             if direction == "torch -> ours" else Adam(list(a.parameters()), lr=1e-3, betas=(0.5, 0.999), eps=1e-8))
    run_steps(first, a, range(10), LRS)
    b.load_state_dict(a.state_dict())
    second = (Adam(list(b.parameters()), lr=1.0, betas=(0.9, 0.9), eps=1.0) if direction == "torch -> ours"
              else torch.optim.Adam(list(b.parameters()), lr=1.0, betas=(0.9, 0.9), eps=1.0, fused=True))
    second.load_state_dict(through_a_file(first.state_dict()))
    assert second.param_groups[0]["betas"] == (0.5, 0.999) and second.param_groups[0]["eps"] == 1e-8
    run_steps(first, a, range(10, 20), LRS)
    run_steps(second, b, range(10, 20), LRS)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_a_state_dict_of_other_parameters_is_refused_naming_what_differs():
    a, _ = twin_models()
    opt = Adam(list(a.parameters()), lr=1e-3, betas=(0.5, 0.999), eps=1e-8)
    run_steps(opt, a, range(2), LRS)
    saved = opt.state_dict()
    fewer = Adam(list(a.parameters())[:3], lr=1e-3, betas=(0.5, 0.999), eps=1e-8)
    with pytest.raises(ValueError, match=r"groups of \[6\] tensors; this Adam has one group of 3"):
        fewer.load_state_dict(saved)
    other = nn.Sequential(nn.Conv2d(3, 4, 5), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    with pytest.raises(ValueError, match=r"parameter 0 has shape \(4, 3, 3, 3\); the parameter has \(4, 3, 5, 5\)"):
        Adam(list(other.parameters()), lr=1e-3, betas=(0.5, 0.999), eps=1e-8).load_state_dict(saved)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([], lr=1e-3, betas=(0.5, 0.999), eps=1e-8)


@pytest.mark.parametrize("decay", ["none", "linear"])
def test_the_rate_schedule_gives_lambda_lr_s_rates(decay):
    cfg = C.build(overrides={"optim.decay": decay, "optim.decay_epochs": 2, "train.epochs": 3, "optim.lr": 3e-3})
    factor = lr_factor(cfg, steps_per_epoch=7)
    ours = Adam([nn.Parameter(torch.zeros(2))], lr=3e-3, betas=(0.5, 0.999), eps=1e-8)
    theirs = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=3e-3)
    schedule, lambda_lr = RateSchedule([ours], factor), LambdaLR(theirs, factor)
    for _ in range(3 * 7 + 2):
        assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"]
        schedule.seek(schedule.position + 1)
        theirs.step()
        lambda_lr.step()
    schedule.seek(9)                                                  # a resumed run seeks to its position
    assert ours.param_groups[0]["lr"] == 3e-3 * factor(9) and (decay == "none") == (factor(9) == 1.0)
