"""zerofwht.models: ZerO's AugSkip ResNets on HadamardLinear shortcuts.

Small widths and inputs throughout (the file must stay fast on a loaded 2-core machine).
"""
from __future__ import annotations

import math

import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

import zerofwht
from zerofwht.models import (AugSkipResNet, ChannelHadamard, augskip_resnet18, augskip_resnet50,
                             zero_relu)
from zerofwht.nn import HadamardLinear

FACTORIES = {"resnet18": (augskip_resnet18, 16), "resnet50": (augskip_resnet50, 32)}  # input size


def _model(arch, **kw):
    factory, size = FACTORIES[arch]
    kw.setdefault("width", 4)
    return factory(**kw), size


def _input(n, c, size, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, size, size, generator=g, dtype=torch.float64).to(dtype)


# ------------------------------------------------------------------------------------------------
# An independent fp64 propagation of the network at ZerO initialization: the stem's Hadamard of
# the zero-padded input, identities through the blocks, and at each downsampling shortcut a
# subsampling followed by the normalized Hadamard of the zero-padded channels. Written from the
# paper's description with scipy's Hadamard matrix, not from the model's modules.
# ------------------------------------------------------------------------------------------------
def _had_block(rows, cols):
    n = 1 << (max(rows, cols) - 1).bit_length()
    h = torch.tensor(scipy.linalg.hadamard(n), dtype=torch.float64)
    return h[:rows, :cols] / math.sqrt(n)


def _mix(m, v):  # the same channel-mixing matrix at every pixel
    return torch.einsum("oc,nchw->nohw", m, v)


def _reference_features(x, arch, width, batchnorm):
    def bn(v):  # training-mode batch norm with scale 1, bias 0 (biased variance, eps 1e-5)
        if not batchnorm:
            return v
        mean = v.mean(dim=(0, 2, 3), keepdim=True)
        var = v.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return (v - mean) / torch.sqrt(var + 1e-5)

    relu = lambda v: v.clamp(min=0)  # noqa: E731
    cin = x.shape[1]
    stem_in = x if arch == "resnet18" else F.max_pool2d(x, 3, 2, 1)
    v = bn(relu(_mix(_had_block(width, cin), stem_in)))
    if arch == "resnet50":
        v = F.max_pool2d(v, 3, 2, 1)
    c = width
    for stage in range(4):
        cout = width * 2 ** stage * (1 if arch == "resnet18" else 4)
        stride = 1 if stage == 0 else 2
        if stride != 1 or c != cout:  # the first block's shortcut; every other block: identity
            u = bn(relu(v))[:, :, ::stride, ::stride]
            v = _mix(_had_block(cout, c), u)
            c = cout
    return bn(relu(v)).mean(dim=(2, 3))


@pytest.mark.parametrize("shortcut", ["hadamard", "dense_init"])
@pytest.mark.parametrize("batchnorm", [True, False])
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_zero_init_output_zero_and_features_match_propagation(arch, batchnorm, shortcut):
    # built in fp64 (not .double() afterwards): dense_init's 2^(-q/2) is then exact in the weight
    model, size = _model(arch, batchnorm=batchnorm, shortcut=shortcut, num_classes=7,
                         dtype=torch.float64)
    model.train()
    x = _input(3, 3, size)
    feats = model.forward_features(x)
    out = model(x)
    assert out.shape == (3, 7)
    assert torch.equal(out, torch.zeros_like(out))  # exactly zero, not merely small
    ref = _reference_features(x, arch, 4, batchnorm)
    assert feats.shape == ref.shape
    assert ref.abs().max() > 0.1  # the features carry the input (the check is not 0 == 0)
    torch.testing.assert_close(feats, ref, rtol=1e-10, atol=1e-10)


def _hadamard_modules(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, HadamardLinear)]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_hadamard_shortcut_equals_dense_product(dtype, memory_format):
    model, _ = _model("resnet50", dtype=dtype)
    mods = _hadamard_modules(model)
    # the stem's fixed path and the four downsampling shortcuts (one per stage)
    assert [n for n, _ in mods] == ["stem_fixed"] + [f"layer{i}.0.shortcut.transform" for i in range(1, 5)]
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-6, atol=2e-6)
    for k, (name, m) in enumerate(mods):
        x = _input(2, m.in_features, 5, seed=k, dtype=dtype).contiguous(memory_format=memory_format)
        x.requires_grad_(True)
        y = m(x)
        g = _input(2, m.out_features, 5, seed=100 + k, dtype=dtype)
        (gx,) = torch.autograd.grad(y, x, g)
        h = _had_block(m.out_features, m.in_features)
        x64 = x.detach().double().requires_grad_(True)
        y_ref = _mix(h, x64)
        (gx_ref,) = torch.autograd.grad(y_ref, x64, g.double())
        torch.testing.assert_close(y.double(), y_ref, **tol, msg=lambda s: f"{name} forward: {s}")
        torch.testing.assert_close(gx.double(), gx_ref, **tol, msg=lambda s: f"{name} backward: {s}")


@pytest.mark.parametrize("cin, cout, h, w, layout", [
    (8, 8, 5, 7, "sliced"),          # rows of H*W not contiguous in memory: copied first
    (8, 8, 5, 7, "channels_last"),   # channel rows already contiguous: the plain transform
    (8, 8, 1, 1, "nchw"),            # H*W = 1: NCHW is channels-last too
    (3, 16, 4, 4, "nchw"),           # the stem: zero-padded channels, H*W a power of two
    (6, 10, 3, 3, "nchw"),           # N = 16 > out: truncated, not orthogonal
    (16, 16, 6, 6, "half"),          # fp16: the plain transform (no extra H_P passes)
])
def test_channel_hadamard_paths_equal_dense_product(cin, cout, h, w, layout):
    m = ChannelHadamard(cin, cout)
    dtype = torch.float16 if layout == "half" else torch.float64
    x = _input(3, cin, max(h, w) + 2, seed=1, dtype=dtype)[:, :, :h, :w]
    if layout != "sliced":
        x = x.contiguous(memory_format=torch.channels_last if layout == "channels_last"
                         else torch.contiguous_format)
    x.requires_grad_(True)
    y = m(x)
    g = _input(3, cout, max(h, w), seed=2, dtype=dtype)[:, :, :h, :w]
    (gx,) = torch.autograd.grad(y, x, g)
    hb = _had_block(cout, cin)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(y.double(), _mix(hb, x.detach().double()), **tol)
    torch.testing.assert_close(gx.double(), _mix(hb.T, g.double()), **tol)
    if dtype == torch.float64:
        assert torch.autograd.gradcheck(m, (x.detach().clone().requires_grad_(True),))


def _grad_schedule(model, x, target, steps):
    """The names of the trainable tensors whose gradient is nonzero, after 0, 1, ... SGD steps."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    nonzero = []
    for _ in range(steps + 1):
        opt.zero_grad()
        F.cross_entropy(model(x), target).backward()
        nonzero.append({n for n, p in model.named_parameters()
                        if p.grad is not None and p.grad.abs().max() > 0})
        opt.step()
    return nonzero


@pytest.mark.parametrize("batchnorm", [True, False])
@pytest.mark.parametrize("arch, steps", [("resnet18", 2), ("resnet50", 3)])
def test_zero_init_nothing_stalls(arch, steps, batchnorm):
    torch.manual_seed(0)
    model, _ = _model(arch, batchnorm=batchnorm, num_classes=5)
    x = _input(4, 3, 16, dtype=torch.float32)  # ResNet-50: stages at 4, 2, 1, 1
    target = torch.tensor([0, 1, 2, 3])
    sched = _grad_schedule(model, x, target, steps=steps)
    names = {n for n, _ in model.named_parameters()}
    # Before any step only the (zero) classifier gets a gradient: every path to the loss runs
    # through its zero weight. Each step then lets the gradient pass one more zero-initialized
    # layer: the basic block's chain of zero layers is classifier -> 3x3 conv, so two steps wake
    # everything (the BN / Fixup scalars in front of a zero conv, the multiplier behind it); the
    # bottleneck's is classifier -> last 1x1 -> 3x3, so three.
    assert sched[0] == {"fc.weight", "fc.bias"}
    assert "stem_conv.weight" in sched[1] and "layer4.1.conv2.weight" in sched[1] if arch == "resnet18" \
        else "layer4.2.conv3.weight" in sched[1]
    for t in range(steps):
        assert sched[t] <= sched[t + 1]
    assert sched[steps - 1] != names  # the count above is exact, not an upper bound
    assert sched[steps] == names, sorted(names - sched[steps])


def test_zero_relu_gradient_at_zero_is_one():
    x = torch.tensor([-2.0, -0.0, 0.0, 3.0, float("nan")], requires_grad=True)
    y = zero_relu(x)
    assert torch.equal(y[:4], torch.relu(x[:4].detach()))
    assert math.isnan(y[4].item())
    (g,) = torch.autograd.grad(y.sum(), x)
    assert g[:4].tolist() == [0.0, 1.0, 1.0, 1.0]
    # With torch.relu the same ZerO network would stall: its gradient at exactly 0 is 0.
    (g_relu,) = torch.autograd.grad(torch.relu(x[:4]).sum(), x)
    assert g_relu[1:3].tolist() == [0.0, 0.0]


def _bits(sd):
    return {k: v.detach().clone() for k, v in sd.items()}


def _assert_bitwise(a, b):
    assert a.keys() == b.keys()
    for k in a:
        va, vb = a[k], b[k]
        if va.is_floating_point():
            assert torch.equal(va.view(torch.int64 if va.dtype == torch.float64 else torch.int32),
                               vb.view(torch.int64 if vb.dtype == torch.float64 else torch.int32)), k
        else:
            assert torch.equal(va, vb), k


@pytest.mark.parametrize("init", ["zero", "idinit"])
def test_deterministic_inits_bitwise_across_constructions_and_threads(init):
    old = torch.get_num_threads()
    x = _input(2, 3, 32, dtype=torch.float32)
    results = []
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            torch.manual_seed(threads)  # the global RNG must not matter
            model, _ = _model("resnet50", init=init)
            sd = _bits(model.state_dict())
            results.append((sd, model.forward_features(x).detach()))
    finally:
        torch.set_num_threads(old)
    for sd, feats in results[1:]:
        _assert_bitwise(results[0][0], sd)
        # ZerO's forward pass is bitwise too (its convolutions multiply by exact zeros and ones and
        # the Hadamard kernel's result does not depend on the thread count); IDInit's eps-sized
        # convolutions are not (oneDNN's reductions depend on the thread count).
        if init == "zero":
            assert torch.equal(feats.view(torch.int32), results[0][1].view(torch.int32))


@pytest.mark.parametrize("init", ["zero", "kaiming", "xavier", "idinit"])
def test_meta_construction_then_to_empty_and_reset(init):
    direct, size = _model("resnet50", init=init, batchnorm=False)
    with torch.device("meta"):
        meta, _ = _model("resnet50", init=init, batchnorm=False)
    assert all(p.is_meta for p in meta.parameters())
    meta.to_empty(device="cpu")
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    meta.reset_parameters(generator=gen())
    direct.reset_parameters(generator=gen())
    _assert_bitwise(_bits(direct.state_dict()), _bits(meta.state_dict()))
    if init in ("kaiming", "xavier"):  # random: a different generator gives different weights
        direct.reset_parameters(generator=torch.Generator().manual_seed(8))
        assert not torch.equal(direct.layer2[0].conv1.weight, meta.layer2[0].conv1.weight)


def test_init_values_of_the_roles():
    m, _ = _model("resnet50")
    blk = m.layer1[0]  # 4 -> 16 channels, bottleneck planes 4
    assert torch.equal(blk.conv1.weight[:, :, 0, 0], torch.eye(4))
    assert torch.count_nonzero(blk.conv2.weight) == 0 and torch.count_nonzero(blk.conv3.weight) == 0
    assert torch.equal(blk.shortcut.conv.weight[:, :, 0, 0], torch.eye(16, 4))
    assert torch.count_nonzero(m.stem_conv.weight) == 0 and torch.count_nonzero(m.fc.weight) == 0
    assert m.stem_fixed.scale == pytest.approx(4 ** -0.5)
    d, _ = _model("resnet50", shortcut="dense_init")
    assert d.layer1[0].shortcut.transform is None
    torch.testing.assert_close(d.layer1[0].shortcut.conv.weight[:, :, 0, 0].double(),
                               _had_block(16, 4), rtol=0, atol=1e-7)
    k, _ = _model("resnet18", init="kaiming")
    assert torch.count_nonzero(k.layer1[0].conv2.weight) == k.layer1[0].conv2.weight.numel()


@pytest.mark.parametrize("batchnorm", [True, False])
def test_torch_compile_fullgraph_forward_backward(batchnorm):
    torch._dynamo.reset()
    torch.manual_seed(0)
    # fp64: eager mode runs the NCHW channel transform as two contiguous-row passes, the compiled
    # graph the plain transform; in fp64 their rounding differences stay far below the tolerance.
    model, size = _model("resnet18", init="kaiming", batchnorm=batchnorm, dtype=torch.float64)
    model.eval()  # BN with running stats: eager and compiled see the same numbers
    x = _input(2, 3, size, dtype=torch.float64)
    # aot_eager traces the whole forward and backward graph (custom ops with their fake kernels
    # and autograd formulas, the where-based ReLU) without inductor's C++ compile time.
    # Eager first: zerofwht's backend choice probes the dispatcher once per process and caches the
    # answer; a process whose very first transform call is being compiled fails in that probe
    # (torch.compile cannot trace torch._C._dispatch_has_kernel_for_dispatch_key), a library
    # limitation outside this model.
    y_e = model(x)
    y_e.square().sum().backward()
    grads_e = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    y_c = compiled(x)
    y_c.square().sum().backward()
    grads_c = {n: p.grad for n, p in model.named_parameters()}
    assert y_e.abs().max() > 1e-3  # kaiming: a nonzero output to compare
    torch.testing.assert_close(y_c, y_e, rtol=1e-9, atol=1e-12)
    for n in grads_e:
        torch.testing.assert_close(grads_c[n], grads_e[n], rtol=1e-9, atol=1e-12, msg=n)


@pytest.mark.parametrize("kwargs, exc, text", [
    (dict(init="he"), ValueError, "init='he'"),
    (dict(shortcut="dense"), ValueError, "shortcut='dense'"),
    (dict(width=0), ValueError, "width=0"),
    (dict(width=2.5), TypeError, "2.5"),
    (dict(num_classes=0), ValueError, "num_classes=0"),
    (dict(in_channels=True), TypeError, "in_channels"),
    (dict(batchnorm="yes"), TypeError, "'yes'"),
])
@pytest.mark.parametrize("factory", [augskip_resnet18, augskip_resnet50])
def test_bad_arguments_name_the_value(factory, kwargs, exc, text):
    with pytest.raises(exc, match=text.replace("(", r"\(")):
        factory(**kwargs)


def test_wrong_input_shape_is_a_clear_error():
    m, _ = _model("resnet18")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got \(2, 1, 8, 8\)"):
        m(torch.zeros(2, 1, 8, 8))


def test_public_names():
    assert zerofwht.models.augskip_resnet18 is augskip_resnet18
    assert isinstance(augskip_resnet18(width=2), AugSkipResNet)
