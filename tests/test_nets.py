"""Every registered network pair: shapes, ranges, the recipe's layers, and the MLP's data-dependent init."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ssgan.config import ModelConfig
from ssgan.nets import NETS, build_nets
from ssgan.nets.dcgan import D_LAYERS
from ssgan.nets.augment import RandomShift
from ssgan.nets.mlp import GaussianNoise, MLPDiscriminator, WNLinear
from ssgan.errors import ConfigError

from helpers_train import torch_threads

# The image size each net is built for; the MLP takes any size, so the smallest that is quick, and
# `dcgan` picks the dcganN of the image size.
SIZES = {"mlp": 16, "cnn32": 32, "dcgan": 28, **{f"dcgan{s}": s for s in D_LAYERS}}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    with torch_threads(1):
        yield


def build(net: str, channels: int = 1, num_logits: int = 5, width: float = 0.125, size: int | None = None):
    torch.manual_seed(0)
    return build_nets(ModelConfig(net=net, width=width), channels, size or SIZES[net], num_logits)


def test_every_registered_net_has_a_test_size():
    assert set(NETS) <= set(SIZES), "add the image size of a new net to SIZES"


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("net", sorted(NETS))
def test_nets_build_and_have_the_interface_the_loop_needs(net, channels):
    D, G = build(net, channels)
    size = SIZES[net]
    z = G.sample_z(4)
    assert z.shape == (4, G.z_dim)
    x_fake = G(z)
    assert x_fake.shape == (4, channels, size, size)
    assert x_fake.min() >= -1.0 and x_fake.max() <= 1.0
    logits, features = D(x_fake)
    assert logits.shape == (4, 5)
    assert features.shape[0] == 4 and features.ndim == 2
    assert torch.isfinite(logits).all() and torch.isfinite(features).all()
    # eval mode (BN running statistics, no dropout or noise) is deterministic
    D.eval()
    x = torch.rand(3, channels, size, size) * 2 - 1
    torch.testing.assert_close(D(x)[0], D(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("net", sorted(NETS))
def test_sample_z_is_reproducible_with_a_generator(net):
    _, G = build(net)
    a = G.sample_z(5, "cpu", torch.Generator().manual_seed(7))
    b = G.sample_z(5, "cpu", torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def conv_groups(D: nn.Module) -> list[list[nn.Module]]:
    """D's body cut at each convolution: [conv, what follows it up to the next conv]."""
    groups: list[list[nn.Module]] = []
    for m in D.body:
        if isinstance(m, nn.Conv2d):
            groups.append([m])
        else:
            groups[-1].append(m)
    return groups


@pytest.mark.parametrize("net", [n for n in sorted(NETS) if n.startswith("dcgan")])
def test_dcgan_discriminator_has_no_batch_norm_on_its_first_and_last_conv(net):
    D, G = build(net)
    groups = conv_groups(D)
    has_bn = [any(isinstance(m, nn.BatchNorm2d) for m in g) for g in groups]
    assert has_bn[0] is False and has_bn[-1] is False
    assert all(has_bn[1:-1])
    # no dropout on the layer whose pooled output G matches
    assert not any(isinstance(m, nn.Dropout) for m in groups[-1])
    # G: BN after every hidden layer, none at the tanh output
    assert isinstance(G.body[-1], nn.Tanh) and isinstance(G.body[-2], nn.ConvTranspose2d)


def test_dcgan64_at_full_width_is_the_recipes_discriminator():
    D, G = build("dcgan64", channels=3, num_logits=11, width=1.0)
    convs = [m for m in D.body if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (128, 4, 2, 1), (256, 4, 2, 1), (512, 4, 4, 0), (1024, 3, 1, 0)]
    sizes = []
    hooks = [c.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:]))) for c in convs]
    D.eval()
    with torch.no_grad():
        logits, features = D(torch.zeros(2, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert sizes == [(128, 32, 32), (256, 16, 16), (512, 4, 4), (1024, 2, 2)]
    assert logits.shape == (2, 11) and features.shape == (2, 1024)
    convs_params = sum(c_in * c_out * k * k + c_out for c_in, c_out, k in
                       [(3, 128, 4), (128, 256, 4), (256, 512, 4), (512, 1024, 3)])
    bn_params = 2 * (256 + 512)
    head_params = 1024 * 11 + 11
    assert sum(p.numel() for p in D.parameters()) == convs_params + bn_params + head_params
    with torch.no_grad():
        assert G(G.sample_z(2)).shape == (2, 3, 64, 64)


@pytest.mark.parametrize("net,size", [("dcgan28", 32), ("dcgan64", 28), ("dcgan32", 64)])
def test_a_wrong_image_size_names_the_valid_nets(net, size):
    with pytest.raises(ConfigError) as e:
        build(net, size=size)
    msg = str(e.value)
    assert f"image_size={net.removeprefix('dcgan')}" in msg and str(size) in msg
    assert "mlp" in msg and "--net auto" in msg


@pytest.mark.parametrize("size", sorted(D_LAYERS))
def test_dcgan_picks_the_network_of_the_image_size(size):
    D, G = build("dcgan", size=size)
    ref_D, ref_G = build(f"dcgan{size}", size=size)
    assert [tuple(p.shape) for p in D.parameters()] == [tuple(p.shape) for p in ref_D.parameters()]
    assert G(G.sample_z(2)).shape == (2, 1, size, size)


def test_dcgan_rejects_other_sizes_naming_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        build("dcgan", size=16)
    assert "16" in str(e.value) and all(str(s) in str(e.value) for s in D_LAYERS)
    assert "mlp" in str(e.value)


def test_an_unknown_net_names_the_registered_ones():
    with pytest.raises(ConfigError) as e:
        build_nets(ModelConfig(net="resnet"), 1, 28, 10)
    assert all(name in str(e.value) for name in NETS)


def test_width_scales_dcgan_channels():
    small, _ = build("dcgan28", width=0.125)
    large, _ = build("dcgan28", width=0.25)
    assert small.head.in_features == 128 and large.head.in_features == 256
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in large.parameters())


def test_mlp_data_init_gives_standardised_pre_activations_on_its_batch():
    torch.manual_seed(0)
    D = MLPDiscriminator(in_dim=64, num_logits=5, hidden=(40, 30, 20))
    x = torch.rand(300, 64) * 2 - 1
    torch.manual_seed(1)
    D.data_init(x)               # runs with the Gaussian-noise layers on, as the reference's init pass
    layers = list(D.hidden) + [D.head]
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o)) for m in layers]
    torch.manual_seed(1)         # the same noise, drawn in the same order, as during the init pass
    with torch.no_grad():
        D(x)
    for h in hooks:
        h.remove()
    assert len(outputs) == len(layers)
    for a in outputs:
        torch.testing.assert_close(a.mean(0), torch.zeros(a.shape[1]), atol=1e-4, rtol=0)
        torch.testing.assert_close(a.std(0, unbiased=False), torch.ones(a.shape[1]), atol=1e-3, rtol=0)
    # only the head's scale trains; hidden scales stay as the init set them
    assert D.head.g.requires_grad and not any(m.g.requires_grad for m in D.hidden)


def test_weight_norm_layer_output_does_not_depend_on_the_scale_of_v():
    torch.manual_seed(0)
    layer = WNLinear(6, 3)
    x = torch.randn(4, 6)
    before = layer(x)
    with torch.no_grad():
        layer.v.mul_(5.0)
    torch.testing.assert_close(layer(x), before)


def test_weight_norm_layer_matches_the_naive_formula_in_values_and_gradients():
    """The layer scales its output rather than rebuilding w = g * v / ||v||; both must agree."""
    torch.manual_seed(0)
    layer = WNLinear(6, 3, train_scale=True)
    with torch.no_grad():
        layer.g.uniform_(0.5, 2.0)
        layer.b.normal_()
    x = torch.randn(4, 6)
    v, g, b = (t.detach().clone().requires_grad_() for t in (layer.v, layer.g, layer.b))
    naive = x @ (g[:, None] * v / v.norm(dim=1, keepdim=True)).T + b
    out = layer(x)
    torch.testing.assert_close(out, naive)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (naive * w).sum().backward()
    for ours, ref in ((layer.v, v), (layer.g, g), (layer.b, b)):
        torch.testing.assert_close(ours.grad, ref.grad)


def test_gaussian_noise_adds_sigma_times_a_standard_normal_draw_and_passes_gradients():
    x = torch.randn(5, 7, requires_grad=True)
    layer = GaussianNoise(0.5)
    torch.manual_seed(3)
    out = layer(x)
    torch.manual_seed(3)
    torch.testing.assert_close(out, x + 0.5 * torch.randn(5, 7))   # the same draw, the naive formula
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(5, 7))
    layer.eval()
    assert layer(x) is x


def test_dcgan_input_noise_only_in_train_mode_and_off_by_default():
    torch.manual_seed(0)
    D, _ = build_nets(ModelConfig(net="dcgan28", width=0.125, dropout=0.0, input_noise=0.3), 1, 28, 5)
    plain, _ = build_nets(ModelConfig(net="dcgan28", width=0.125, dropout=0.0), 1, 28, 5)
    plain.load_state_dict(D.state_dict())                     # the noise adds no weights: same keys
    x = torch.zeros(4, 1, 28, 28)
    D.train(), plain.train()
    assert not torch.equal(D(x)[1], D(x)[1])
    assert torch.equal(plain(x)[1], plain(x)[1])              # no noise unless asked for
    plain.load_state_dict(D.state_dict())                     # the same BN statistics too
    D.eval()
    assert torch.equal(D(x)[1], plain.eval()(x)[1])
    assert D.input_noise.sigma == pytest.approx(0.6)          # 0.3 in [0, 1] pixels is 0.6 on [-1, 1]


def test_dcgan_layer_noise_on_hidden_blocks_only_in_train_mode():
    torch.manual_seed(0)
    D, _ = build_nets(ModelConfig(net="dcgan28", width=0.125, dropout=0.0, layer_noise=0.5), 1, 28, 5)
    plain, _ = build_nets(ModelConfig(net="dcgan28", width=0.125, dropout=0.0), 1, 28, 5)
    noises = [m for m in D.body if isinstance(m, GaussianNoise)]
    assert [m.sigma for m in noises] == [0.5] * (len(D_LAYERS[28]) - 1)   # every block but the matched one
    assert not any(isinstance(m, GaussianNoise) for m in plain.body)      # off by default: keys unchanged
    x = torch.randn(4, 1, 28, 28)
    D.train()
    assert not torch.equal(D(x)[1], D(x)[1])
    with torch.no_grad():                                   # same weights and BN statistics, in the same order
        for a, b in zip(list(D.parameters()) + list(D.buffers()), list(plain.parameters()) + list(plain.buffers())):
            b.copy_(a)
    assert torch.equal(D.eval()(x)[1], plain.eval()(x)[1])                # eval: exactly the plain net


def test_dcgan_generator_dropout_follows_dropout_unless_set():
    _, G = build_nets(ModelConfig(net="dcgan28", width=0.125, dropout=0.3), 1, 28, 5, True)
    assert {m.p for m in G.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}
    D, G = build_nets(ModelConfig(net="dcgan28", width=0.125, dropout=0.3, g_dropout=0.0), 1, 28, 5, True)
    assert {m.p for m in G.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    assert {m.p for m in D.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}


def test_random_shift_translates_each_image_within_range_and_passes_gradients():
    torch.manual_seed(0)
    shift = RandomShift(2)
    x = torch.randn(16, 3, 7, 9, requires_grad=True)
    y = shift(x)
    padded = torch.nn.functional.pad(x.detach(), (2, 2, 2, 2), value=-1.0)
    offsets = []
    for i in range(16):  # each output is one crop of the padded image: find which
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(y[i].detach(), padded[i, :, dy:dy + 7, dx:dx + 9])]
        assert hits, f"image {i} is not a translation of its input by at most 2 pixels"
        offsets.append(hits[0])
    assert len(set(offsets)) > 1                                   # each image its own shift
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0            # G's gradients pass through
    shift.eval()
    assert torch.equal(shift(x), x)                                 # evaluation sees the image as it is
    assert torch.equal(RandomShift(0)(x), x)


def test_dcgan_input_shift_adds_no_weights_and_is_off_by_default():
    D, _ = build_nets(ModelConfig(net="dcgan28", width=0.125, input_shift=2), 1, 28, 5)
    plain, _ = build_nets(ModelConfig(net="dcgan28", width=0.125), 1, 28, 5)
    plain.load_state_dict(D.state_dict())
    assert D.augment[1].max_shift == 2 and plain.augment[1].max_shift == 0


def test_random_flip_mirrors_each_image_or_leaves_it_only_in_training():
    from ssgan.nets.augment import RandomFlip
    torch.manual_seed(0)
    x = torch.randn(64, 3, 5, 7, requires_grad=True)
    flip = RandomFlip(True).train()
    y = flip(x)
    mirrored = [torch.equal(y[i], x[i].flip(2)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(m or k for m, k in zip(mirrored, kept))            # each image whole, mirrored or not
    assert 16 < sum(mirrored) < 48                                # about half, each image its own coin
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))                # a permutation: gradients pass unchanged
    flip.eval()
    assert torch.equal(flip(x), x)
    assert torch.equal(RandomFlip(False).train()(x), x)


def test_random_cutout_blanks_one_square_per_image_only_in_training():
    from ssgan.nets.augment import RandomCutout
    torch.manual_seed(0)
    x = torch.rand(64, 2, 12, 12, requires_grad=True)           # no pixel is -1 before the cutout
    cut = RandomCutout(4).train()
    y = cut(x)
    blanked = (y == -1.0)
    assert torch.equal(blanked[:, 0], blanked[:, 1])              # the same square in every channel
    corners = set()
    for i in range(64):
        rows = blanked[i, 0].any(1).nonzero().flatten()
        cols = blanked[i, 0].any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4        # one square of side 4, maybe cut by the border
        assert blanked[i, 0].sum() == len(rows) * len(cols)       # a full rectangle, nothing else
        assert torch.equal(rows, torch.arange(rows[0], rows[0] + len(rows)))
        assert torch.equal(y[i][~blanked[i]], x[i][~blanked[i]])  # the rest untouched
        corners.add((int(rows[0]), int(cols[0])))
    assert len(corners) > 20                                      # each image its own place
    assert any(len(blanked[i, 0].any(1).nonzero()) < 4 for i in range(64))   # squares reach past the border
    y.sum().backward()
    assert torch.equal(x.grad, (~blanked).float())                # gradients pass where the image is kept
    cut.eval()
    assert torch.equal(cut(x), x)
    assert torch.equal(RandomCutout(0).train()(x), x)


@pytest.mark.parametrize("net, size", [("dcgan32", 32), ("cnn32", 32), ("mlp", 32)])
def test_flip_and_shift_add_no_weights_and_change_only_training_passes(net, size):
    torch.manual_seed(0)
    D, _ = build_nets(ModelConfig(net=net, width=0.125, input_shift=2, input_flip=True, input_cutout=8,
                                  dropout=0.0), 3, size, 5)
    plain, _ = build_nets(ModelConfig(net=net, width=0.125, dropout=0.0), 3, size, 5)
    plain.load_state_dict(D.state_dict())                         # the same keys: checkpoints load either way
    x = torch.rand(8, 3, size, size) * 2 - 1
    D.eval(), plain.eval()
    torch.testing.assert_close(D(x)[0], plain(x)[0])              # evaluation sees the images as they are
    for m in list(D.modules()) + list(plain.modules()):          # cnn32's dropout and the mlp's noise are fixed
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if hasattr(m, "sigma"):
            m.sigma = 0.0
    D.train()
    for m in list(D.modules()) + list(plain.modules()):
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()                                              # only the augmentation differs
    assert not torch.allclose(D(x)[0], plain(x)[0])


def test_mlp_input_shift_translates_before_flattening_and_adds_no_weights():
    torch.manual_seed(0)
    D, _ = build_nets(ModelConfig(net="mlp", input_shift=2), 1, 16, 5)
    plain, _ = build_nets(ModelConfig(net="mlp"), 1, 16, 5)
    plain.load_state_dict(D.state_dict())
    for m in (D, plain):
        m.input_noise.sigma = m.noise.sigma = 0.0                  # only the translation differs
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    D.eval(), plain.eval()
    torch.testing.assert_close(D(x)[0], plain(x)[0])
    D.train(), plain.train()
    torch.manual_seed(1)
    shifted = D.augment(x)
    torch.manual_seed(1)
    torch.testing.assert_close(D(x)[0], plain(shifted)[0])       # D sees the translated image
    assert not torch.allclose(D(x)[0], plain(x)[0])


def test_mlp_generator_and_discriminator_noise_only_in_train_mode():
    D, G = build("mlp")
    x = torch.zeros(2, 1, 16, 16)
    D.train()
    assert not torch.equal(D(x)[1], D(x)[1])                  # Gaussian noise on the input and layers
    D.eval()
    assert torch.equal(D(x)[1], D(x)[1])
    z = G.sample_z(3)
    assert z.min() >= 0 and z.max() <= 1                      # uniform noise, as the reference


# ----------------------------------------------------------------------------------------------- cnn32
def test_cnn32_data_init_gives_each_unit_zero_mean_and_the_chosen_std():
    from ssgan.nets.weightnorm import WeightNormed
    D, G = build("cnn32", channels=3, width=0.25)
    x = torch.rand(64, 3, 32, 32) * 2 - 1
    torch.manual_seed(1)
    D.data_init(x)
    torch.manual_seed(1)                      # replay the same dropout masks, layer by layer
    h, checked = x, 0
    for layer in D.body:
        h = layer(h)
        if isinstance(layer, WeightNormed):
            mean, std = h.mean(dim=(0, 2, 3)), h.std(dim=(0, 2, 3), unbiased=False)
            torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-4, rtol=0)
            torch.testing.assert_close(std, torch.ones_like(std), atol=1e-3, rtol=0)
            checked += 1
    assert checked == 9 and all(not m.g.requires_grad for m in D.body if isinstance(m, WeightNormed))
    logits = D.head(h.mean(dim=(2, 3)))
    torch.testing.assert_close(logits.std(0, unbiased=False), torch.full((5,), 0.1), atol=1e-4, rtol=0)
    assert D.head.g.requires_grad
    z = G.sample_z(64)
    G.data_init(z)
    pre_tanh = G.out(G.hidden(z))
    torch.testing.assert_close(pre_tanh.std(dim=(0, 2, 3), unbiased=False), torch.full((3,), 0.1), atol=1e-4, rtol=0)


def test_cnn32_matches_the_reference_layout_at_full_width():
    D, G = build("cnn32", channels=3, num_logits=10, width=1.0)
    convs = [m for m in D.body if hasattr(m, "v")]
    assert [tuple(m.v.shape[:2]) for m in convs] == [(96, 3), (96, 96), (96, 96), (192, 96), (192, 192),
                                                     (192, 192), (192, 192), (192, 192), (192, 192)]
    assert [m.stride for m in convs] == [1, 1, 2, 1, 1, 2, 1, 1, 1]
    assert [m.v.shape[-1] for m in convs][-3:] == [3, 1, 1] and convs[-3].padding == 0
    assert [p for p in (m.p for m in D.body if isinstance(m, torch.nn.Dropout))] == [0.2, 0.5, 0.5]
    assert G.fc.out_features == 4 * 4 * 512 and G.up1.out_channels == 256 and G.up2.out_channels == 128
    x = G(G.sample_z(2))
    assert x.shape == (2, 3, 32, 32) and x.abs().max() <= 1


# ------------------------------------------------------------------------------------------- net auto
@pytest.mark.parametrize("channels, size, net", [(1, 28, "mlp"), (3, 28, "mlp"), (3, 32, "cnn32"), (1, 32, "cnn32"),
                                                 (1, 64, "dcgan64"), (3, 16, "mlp")])
def test_net_auto_picks_by_image_size(channels, size, net):
    from ssgan.nets import choose_net
    assert choose_net(channels, size) == net


def test_settle_fills_in_the_net_s_paper_settings_and_keeps_explicit_ones():
    from ssgan import config as C
    from ssgan.nets import preferred_size, settle
    cfg = settle(C.build(overrides={"data.dataset": "cifar10"}), 3, 32)
    assert (cfg.model.net, cfg.optim.lr, cfg.method.fm_distance) == ("cnn32", 3e-4, "l1")
    assert (cfg.data.image_size, cfg.data.channels) == (32, 3)
    cfg = settle(C.build(overrides={"optim.lr": 1e-3, "method.fm_distance": "l2"}), 3, 32)
    assert (cfg.model.net, cfg.optim.lr, cfg.method.fm_distance) == ("cnn32", 1e-3, "l2")
    assert settle(C.build(), 1, 28).model.net == "mlp" and settle(C.build(), 1, 28).optim.lr == 3e-3
    assert (preferred_size("auto", 1), preferred_size("auto", 3), preferred_size("cnn32", 1),
            preferred_size("mlp", 3)) == (28, 32, 32, None)


@pytest.mark.parametrize("net", ["dcgan28", "dcgan64", "cnn32"])
def test_in_place_activations_give_the_same_outputs_and_gradients_as_out_of_place(net):
    """The conv nets apply (Leaky)ReLU, and dropout after batch norm, in place to save memory; a copy
    with out-of-place layers, the same weights and the same random draws must give identical losses
    and gradients."""
    D, G = build(net, width=0.125)
    D2, G2 = build(net, width=0.125)
    in_place = [m for m in list(D2.modules()) + list(G2.modules()) if getattr(m, "inplace", False)]
    assert sum(isinstance(m, (nn.LeakyReLU, nn.ReLU)) for m in in_place) >= 4
    assert net == "cnn32" or sum(isinstance(m, nn.Dropout) for m in in_place) >= 4  # dcgan: D's 2 and G's 3
    for m in in_place:
        m.inplace = False
    grads = []
    for d, g in ((D, G), (D2, G2)):
        torch.manual_seed(3)
        logits, features = d(g(g.sample_z(6)))
        (logits.logsumexp(1).mean() + features.square().mean()).backward()
        grads.append([p.grad.clone() for p in list(d.parameters()) + list(g.parameters()) if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
