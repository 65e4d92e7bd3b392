"""The fast training step computes what a plain step computes (fp32, same batch).

`d_step` concatenates D's batches when the net has no batch norm, generates without a
graph for the D update and skips D's weight gradients in the G step. A plain step,
written here the obvious way, must give the same losses and the same updated weights.
"""
from __future__ import annotations

import copy

import pytest
import torch

from ssgan import config as C
from ssgan.algorithms import build_algorithm
from ssgan.nets import build_nets, settle
from ssgan.training.run import make_ema
from ssgan.training.step import DiscriminatorPass, d_step, frozen_bn_stats, g_step, make_step_parts


def plain_step(D, G, algo, opt_d, opt_g, x_lab, y_lab, x_unl, x_unl_g, has_bn):
    x_fake = G(G.sample_z(len(x_lab)))
    views = algo.unl_views  # ct: D sees each unlabeled batch twice
    if has_bn:  # the real images form one BN batch, as in d_step
        logits_real, _ = D(torch.cat([x_lab] + [x_unl] * views))
        l_lab, l_unl = logits_real.split([len(x_lab), views * len(x_unl)])
    else:
        l_lab, _ = D(x_lab)
        l_unl = torch.cat([D(x_unl)[0] for _ in range(views)])
    with frozen_bn_stats(D):
        l_fake, _ = D(x_fake.detach())
    d_loss, d_terms = algo.d_loss(l_lab, y_lab, l_unl, l_fake)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    x_fake = G(G.sample_z(len(x_lab)))
    with torch.no_grad():
        _, f_real = D(x_unl_g)
    with frozen_bn_stats(D):
        l_fake, f_fake = D(x_fake)
    g_loss, g_terms = algo.g_loss(l_fake, f_real, f_fake)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return [d_terms[n] for n in algo.d_terms] + [d_loss] + [g_terms[n] for n in algo.g_terms] + [g_loss]


def sgd(params):
    # SGD, not Adam: its update is linear in the gradient, so equal gradients give equal weights to
    # float precision (Adam's first step, about lr * sign(grad), amplifies rounding where grad ~ eps).
    return torch.optim.SGD(params, lr=0.1)


@pytest.mark.parametrize("method,net,size,extra", [
    ("fm", "mlp", 16, {}), ("kplus1", "mlp", 16, {}), ("kplus1", "dcgan28", 28, {}), ("ct", "mlp", 16, {}),
    ("ct", "dcgan28", 28, {}), ("ct", "mlp", 16, {"method.pseudo_threshold": 0.01}),   # every row a pseudo-label
])
def test_fast_step_equals_plain_step(method, net, size, extra):
    torch.manual_seed(0)
    cfg = settle(C.build(overrides={"method.name": method, "model.net": net, "model.width": 0.125,
                                    "model.dropout": 0.0, "data.image_size": size, **extra}), 1, size)
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, 1, size, algo.num_logits(4))
    for m in D.modules():  # the MLP's Gaussian noise draws in a different order when batches are concatenated
        if hasattr(m, "sigma"):
            m.sigma = 0.0
    D2, G2 = copy.deepcopy(D), copy.deepcopy(G)
    B = 8
    x_lab, x_unl, x_unl_g = (torch.rand(B, 1, size, size) * 2 - 1 for _ in range(3))
    y_lab = torch.randint(0, 4, (B,))

    cfg.train.batch_size = B
    parts = make_step_parts(cfg, algo, D, G, torch.device("cpu"), optimizer=lambda params, lr: sgd(params))
    torch.manual_seed(1)
    fast = d_step(parts, x_lab, y_lab, x_unl) + g_step(parts, x_unl_g)

    torch.manual_seed(1)  # the same z draws, in the same order
    plain = plain_step(D2, G2, algo, sgd([p for p in D2.parameters() if p.requires_grad]),
                       sgd([p for p in G2.parameters() if p.requires_grad]), x_lab, y_lab, x_unl, x_unl_g,
                       DiscriminatorPass(D2).has_bn)
    for a, b in zip(fast, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for (name, a), b in zip(list(D.state_dict().items()) + list(G.state_dict().items()),
                            list(D2.state_dict().values()) + list(G2.state_dict().values())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name} differs after one step: {m}")


def test_ct_step_sees_two_differently_noised_passes_of_the_unlabeled_batch():
    torch.manual_seed(0)
    cfg = settle(C.build(overrides={"method.name": "ct", "model.net": "mlp", "data.image_size": 16}), 1, 16)
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, 1, 16, algo.num_logits(4))
    cfg.train.batch_size = 8
    parts = make_step_parts(cfg, algo, D, G, torch.device("cpu"))
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    sup, unl, cons, ent, total = d_step(parts, x, torch.arange(8) % 4, x)
    assert cons.item() > 0                     # the mlp's Gaussian noise differs between the two passes
    for m in D.modules():
        if hasattr(m, "sigma"):
            m.sigma = 0.0
    assert d_step(parts, x, torch.arange(8) % 4, x)[2].item() == 0.0   # without noise they agree


def _teacher_parts(method: str, **over):
    torch.manual_seed(0)
    overrides = {"method.name": method, "model.net": "dcgan28", "model.width": 0.125, "model.dropout": 0.0,
                 "data.image_size": 28, "method.teacher": "ema", "method.kplus1_consistency": 5.0, **over}
    cfg = settle(C.build(overrides=overrides), 1, 28)
    cfg.train.batch_size = 8
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, 1, 28, algo.num_logits(4))
    ema = make_ema(D, 0.999)
    return make_step_parts(cfg, algo, D, G, torch.device("cpu"), ema=ema), algo, D, ema


@pytest.mark.parametrize("method", ["kplus1", "ct"])
def test_ema_teacher_gives_the_second_view_without_gradients_or_bn_updates(method):
    parts, algo, D, ema = _teacher_parts(method)
    D.train(), ema.module.eval()                                   # as training leaves them
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    with torch.no_grad(), frozen_bn_stats(ema.module):           # no dropout, noise or shift: deterministic
        expected = ema.module.train()(x)[0]
    ema.module.eval()
    stats = {k: v.clone() for k, v in ema.module.state_dict().items() if "running" in k}
    seen = {}
    d_loss = algo.d_loss

    def spy(logits_lab, y_lab, logits_unl, logits_fake):
        seen["unl"] = logits_unl.detach()
        halves = logits_unl.chunk(2)
        params = [p for p in D.parameters()]
        seen["grads"] = [torch.autograd.grad(h.sum(), params, allow_unused=True, retain_graph=True) for h in halves]
        return d_loss(logits_lab, y_lab, logits_unl, logits_fake)

    algo.d_loss = spy
    real_update = ema.update_parameters
    ema.update_parameters = lambda model: None                     # look at the teacher pass alone
    x_lab = torch.rand(8, 1, 28, 28) * 2 - 1                      # other images: D's real batch has other BN statistics
    d_step(parts, x_lab, torch.arange(8) % 4, x)
    ema.update_parameters = real_update
    first, second = seen["unl"].chunk(2)
    assert first.shape == second.shape == expected.shape           # D passes the unlabeled batch once
    torch.testing.assert_close(second, expected)                   # the second view is the teacher's
    reaches = [any(g is not None and g.abs().sum() > 0 for g in grads) for grads in seen["grads"]]
    assert reaches == [True, False]                                # the term trains the student only
    assert not ema.module.training                                 # the teacher goes back to evaluation mode
    for k, v in ema.module.state_dict().items():
        if "running" in k:
            assert torch.equal(v, stats[k]), f"the teacher pass moved {k}"


def test_ema_teacher_needs_an_ema():
    from ssgan.errors import ConfigError
    with pytest.raises(ConfigError, match="train.ema"):
        C.build(overrides={"method.name": "kplus1", "method.teacher": "ema", "train.ema": None})
    cfg = settle(C.build(overrides={"method.name": "ct", "model.net": "mlp", "method.teacher": "ema"}), 1, 28)
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, 1, 28, algo.num_logits(10))
    with pytest.raises(ConfigError, match="method.teacher=ema"):
        make_step_parts(cfg, algo, D, G, torch.device("cpu"))     # a caller that forgot the EMA is told


@pytest.mark.parametrize("overrides, d_betas, g_betas", [
    ({}, (0.5, 0.999), (0.5, 0.999)),
    ({"optim.g_beta1": 0.0, "optim.beta2": 0.9999, "optim.lr": 3e-3, "optim.g_lr": 1e-3},
     (0.5, 0.9999), (0.0, 0.9999)),   # Dai et al.'s MNIST settings
])
def test_g_has_its_own_beta1_and_rate_when_set(overrides, d_betas, g_betas):
    cfg = settle(C.build(overrides={"model.net": "mlp", **overrides}), 1, 16)
    algo = build_algorithm(cfg.method)
    D, G = build_nets(cfg.model, 1, 16, algo.num_logits(10))
    parts = make_step_parts(cfg, algo, D, G, torch.device("cpu"))
    d_group, g_group = parts.opt_d.param_groups[0], parts.opt_g.param_groups[0]
    assert d_group["betas"] == d_betas and g_group["betas"] == g_betas
    assert d_group["lr"] == cfg.optim.lr and g_group["lr"] == (cfg.optim.g_lr or cfg.optim.lr)
