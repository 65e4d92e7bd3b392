"""The CPU dropout's mask: the asked keep probability, independent coins, exact expectation, the
gradient of a mask, any memory layout, and nn.Dropout's behaviour wherever it defers to it."""
import pytest
import torch
import torch.nn as nn

from ssgan.nets.dropout import Dropout, keep_mask


def test_mask_keeps_each_element_with_the_asked_probability_independently():
    torch.manual_seed(0)
    x = torch.empty(1000, 4, 25, 10)                               # 1e6 elements
    mask, keep = keep_mask(x, 0.7)
    assert mask.shape == x.shape and mask.dtype == torch.bool
    assert abs(keep - 0.7) < 1 / 65536
    flat = mask.flatten().float()
    assert abs(flat.mean().item() - keep) < 0.002                  # 4.6 standard errors
    for k in range(4):                                             # each quarter of the 64-bit draws
        assert abs(flat[k::4].mean().item() - keep) < 0.004
    a, b = flat[:-1] - keep, flat[1:] - keep                       # neighbours are uncorrelated
    assert abs((a * b).mean().item() / (keep * (1 - keep))) < 0.01


def test_output_is_x_scaled_or_zero_with_an_unbiased_mean_and_a_mask_gradient():
    torch.manual_seed(0)
    drop = Dropout(0.3).train()
    x = (torch.rand(64, 8, 6, 6) + 0.5).requires_grad_()
    y = drop(x)
    ratio = (y / x).detach()
    kept = ratio > 0
    scale = ratio[kept]
    assert torch.allclose(scale, torch.full_like(scale, scale[0].item())) and abs(scale[0].item() - 1 / 0.7) < 1e-4
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() * scale[0])    # gradients flow through the kept elements only
    ones = torch.ones(200_000)
    assert abs(torch.stack([drop(ones) for _ in range(20)]).mean().item() - 1.0) < 0.003   # E[dropout(x)] = x


def test_channels_last_input_keeps_its_layout_and_same_seed_gives_same_masks():
    x = torch.rand(16, 8, 5, 5).contiguous(memory_format=torch.channels_last) + 0.5
    drop = Dropout(0.5).train()
    torch.manual_seed(3)
    y1 = drop(x)
    torch.manual_seed(3)
    y2 = drop(x)
    assert torch.equal(y1, y2)
    assert y1.is_contiguous(memory_format=torch.channels_last)
    assert set(torch.unique((y1 / x).round(decimals=4)).tolist()) <= {0.0, 2.0}


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dropout_equals_the_naive_product_with_the_keep_mask(inplace, channels_last):
    """Dropped elements are set to zero rather than multiplied by a float copy of the mask; the
    values and the input gradient must be those of x * mask * (1 / keep) with the same draws."""
    base = torch.randn(8, 6, 5, 5, generator=torch.Generator().manual_seed(0))
    if channels_last:
        base = base.contiguous(memory_format=torch.channels_last)
    upstream = torch.randn(base.shape, generator=torch.Generator().manual_seed(1))
    x = base.clone().requires_grad_(True)
    torch.manual_seed(7)
    y = Dropout(0.3, inplace=inplace).train()(x * 1)     # (x * 1: in place needs a non-leaf input)
    y.backward(upstream)
    torch.manual_seed(7)
    mask, keep = keep_mask(base, 0.7)
    assert torch.equal(y.detach(), base * mask * (1 / keep))  # same coins, same products (+0 and -0 compare equal)
    assert torch.equal(x.grad, upstream * (1 / keep) * mask)
    assert (y == 0).any() and y.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert x.grad.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_gradient_keeps_the_channels_last_layout_below_a_batch_norm():
    """A gradient handed down in another layout sends batch norm's backward down another kernel
    (other rounding, and a layout copy): the conv nets must train the same whichever way the
    mask is applied."""
    bn = nn.BatchNorm2d(6)
    x = torch.randn(8, 6, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    seen = []
    h = bn(x)
    h.register_hook(lambda g: seen.append(g.is_contiguous(memory_format=torch.channels_last)))
    upstream = torch.randn(x.shape).contiguous(memory_format=torch.channels_last)
    Dropout(0.3, inplace=True).train()(h).backward(upstream)
    assert seen == [True]


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_defers_to_nn_dropout_in_eval_and_at_the_ends(p):
    x = torch.rand(10, 3, 4, 4) + 0.5
    assert torch.equal(Dropout(0.3).eval()(x), x)
    out = Dropout(p).train()(x)
    assert torch.equal(out, x if p == 0 else torch.zeros_like(x))
    assert isinstance(Dropout(0.3), torch.nn.Dropout)             # state dicts and `isinstance` checks as before


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_leaky_relu_and_dropout_match_the_two_layers_bit_for_bit(dtype, channels_last):
    """D's first layer fuses LeakyReLU and dropout (keeping one activation instead of two); the
    same seed must give the same output and the same input gradient as the two layers."""
    from ssgan.nets.dropout import LeakyReLUDropout
    base = torch.randn(4, 6, 5, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
    if channels_last:
        base = base.contiguous(memory_format=torch.channels_last)
    upstream = torch.randn(base.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    results = []
    for layers in ([nn.LeakyReLU(0.2, inplace=True), Dropout(0.3)], [nn.Identity(), LeakyReLUDropout(0.3, 0.2)]):
        x = base.clone().requires_grad_(True)
        torch.manual_seed(5)
        y = layers[1](layers[0](x * 1))          # (x * 1: the in-place LeakyReLU needs a non-leaf input)
        y.backward(upstream)
        results.append((y.detach(), x.grad))
    (y0, g0), (y1, g1) = results
    assert torch.equal(y0, y1) and torch.equal(g0, g1)
    assert (y1 == 0).any() and (g1 == 0).any() and (y1 < 0).any()  # dropped, and negative slopes kept
    assert y1.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_fused_leaky_relu_and_dropout_in_evaluation_is_leaky_relu():
    from ssgan.nets.dropout import LeakyReLUDropout
    x = torch.randn(3, 4, 2, 2)
    m = LeakyReLUDropout(0.5, 0.2).eval()
    assert torch.equal(m(x), nn.functional.leaky_relu(x, 0.2))
