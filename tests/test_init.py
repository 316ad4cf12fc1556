"""zerofwht.init: worked values of DESIGN.md section 4, every initializer on every CPU backend
against the dense references of zerofwht.reference (bitwise), shards, non-contiguous destinations,
meta tensors, autograd, errors, the model-level scheme, and the op registrations.

Triton (under TRITON_INTERPRET=1): test_init_triton.py; DTensor over gloo: test_init_dtensor.py;
ahead-of-time GPU checks: test_init_aot.py.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import zerofwht
from zerofwht import init, reference

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["fp32", "fp64", "fp16", "bf16"]


def cpu_backends():
    names = ["torch"]
    if zerofwht._backends.INIT_BACKENDS["cpp"].present() is None:
        names.insert(0, "cpp")
    return names


BACKENDS = cpu_backends()

# (name in zerofwht.reference.init_reference, initializer, params)
INITIALIZERS = [
    ("partial_identity", init.partial_identity_, {}),
    ("hadamard", init.hadamard_, {}),
    ("hadamard", init.hadamard_, {"scale": "paper"}),
    ("hadamard", init.hadamard_, {"scale": -0.3}),
    ("zero", init.zero_init_, {}),
    ("idi", init.idi_, {"tau": 1.0}),
    ("idi", init.idi_, {"tau": math.sqrt(2.0)}),
    ("idiz", init.idiz_, {"eps": 1e-6}),
    ("idiz", init.idiz_, {"eps": 0.25}),
    ("idic", init.idic_, {"tau": 0.5}),
    ("idizc", init.idizc_, {"eps": 1e-3}),
]
INIT_IDS = [f"{n}{'-' + '-'.join(f'{k}={v}' for k, v in p.items()) if p else ''}"
            for n, _, p in INITIALIZERS]

SHAPES_2D = [(1, 1), (1, 7), (7, 1), (4, 3), (3, 4), (5, 3), (3, 5), (8, 8), (16, 5), (5, 16),
             (33, 17), (17, 33), (64, 64), (100, 37), (37, 100), (130, 70), (2, 300)]
SHAPES_CONV = [(4, 2, 3), (4, 2, 3, 3), (6, 3, 3, 3, 3), (3, 6, 1, 5), (8, 4, 2, 2), (5, 7, 4, 1, 3),
               (1, 1, 3, 3), (20, 9, 5)]


def poisoned(shape, dtype=torch.float32):
    return torch.full(shape, float("nan"), dtype=dtype)


def ref(name, shape, params, dtype=torch.float32):
    return reference.init_reference(name, shape, dtype=dtype, **params)


def assert_bitwise(actual, expected, what=""):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    ok = torch.equal(actual, expected) or (
        actual.view(torch.int16 if actual.element_size() == 2 else
                    {4: torch.int32, 8: torch.int64}[actual.element_size()])
        .equal(expected.view(torch.int16 if expected.element_size() == 2 else
                             {4: torch.int32, 8: torch.int64}[expected.element_size()])))
    if not ok:
        diff = (actual.double() - expected.double()).abs().nan_to_num(float("inf"))
        idx = torch.nonzero(diff > 0)[:5].tolist()
        raise AssertionError(f"{what}: {int((diff > 0).sum())} elements differ, first at {idx}\n"
                             f"actual={actual}\nexpected={expected}")


# ----------------------------------------------------------------------------------------------
# Worked values of DESIGN.md section 4 (exact)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
class TestWorkedValues:
    def test_zero_4x3(self, backend):
        w = init.zero_init_(poisoned((4, 3), torch.float64), backend=backend)
        assert torch.equal(w, 0.5 * torch.tensor([[1., 1, 1], [1, -1, 1], [1, 1, -1], [1, -1, -1]],
                                                 dtype=torch.float64))

    def test_zero_3x4(self, backend):
        w = init.zero_init_(poisoned((3, 4), torch.float64), backend=backend)
        assert torch.equal(w, torch.cat([torch.eye(3, dtype=torch.float64),
                                         torch.zeros(3, 1, dtype=torch.float64)], 1))

    def test_zero_5x3(self, backend):
        w = init.zero_init_(poisoned((5, 3), torch.float64), backend=backend)
        signs = torch.tensor([[1., 1, 1], [1, -1, 1], [1, 1, -1], [1, -1, -1], [1, 1, 1]],
                             dtype=torch.float64)
        assert torch.allclose(w, 0.35355339 * signs, rtol=0, atol=1e-8)
        assert torch.equal(w, signs * 2.0 ** -1.5)
        assert w[0, 0].item() == 2.0 ** -1.5  # 2^(-q/2), q = ceil(log2 5) = 3, correctly rounded

    def test_zero_8x8(self, backend):
        w = init.zero_init_(poisoned((8, 8), torch.float64), backend=backend)
        assert torch.equal(w, torch.eye(8, dtype=torch.float64))

    def test_zero_conv_centre_tap(self, backend):
        w = init.zero_init_(poisoned((4, 3, 3, 5), torch.float64), backend=backend)
        assert torch.equal(w[:, :, 1, 2], torch.tensor([[1., 1, 1], [1, -1, 1], [1, 1, -1],
                                                        [1, -1, -1]], dtype=torch.float64) * 0.5)
        mask = torch.ones(3, 5, dtype=torch.bool)
        mask[1, 2] = False
        assert torch.count_nonzero(w[:, :, mask]) == 0

    def test_idi_5x3(self, backend):
        w = init.idi_(poisoned((5, 3)), backend=backend)
        e = torch.eye(3)
        assert torch.equal(w, torch.stack([e[0], e[1], e[2], e[0], e[1]]))

    def test_idiz_3x5(self, backend):
        w = init.idiz_(poisoned((3, 5), torch.float64), eps=1e-6, backend=backend)
        assert torch.equal(w, 1e-6 * torch.tensor([[1., 0, 0, -1, 0], [0, 1, 0, 0, -1],
                                                   [0, 0, 1, -1, 0]], dtype=torch.float64))

    def test_idiz_5x3(self, backend):
        w = init.idiz_(poisoned((5, 3), torch.float64), eps=1e-6, backend=backend)
        assert torch.equal(w, 1e-6 * torch.tensor([[1., -1, 0], [0, 1, -1], [-1, 0, 1], [1, -1, 0],
                                                   [0, 1, -1]], dtype=torch.float64))

    def test_idic_4x2x3x3(self, backend):
        w = init.idic_(poisoned((4, 2, 3, 3)), tau=1.0, backend=backend)
        assert torch.nonzero(w).tolist() == [[0, 0, 0, 0], [1, 0, 0, 1], [2, 0, 0, 2], [3, 0, 1, 0]]
        assert torch.all(w[tuple(torch.nonzero(w).T)] == 1)

    def test_partial_identity(self, backend):
        assert torch.equal(init.partial_identity_(poisoned((3, 5)), backend=backend), torch.eye(3, 5))
        assert torch.equal(init.partial_identity_(poisoned((5, 3)), backend=backend), torch.eye(5, 3))

    def test_hadamard_scales(self, backend):
        # (5, 3): P = 8 = 2^3; code c = 8^-1/2, paper c = 2^-(3-1)/2 = 1/2 (sqrt 2 larger)
        h = torch.tensor([[1., 1, 1], [1, -1, 1], [1, 1, -1], [1, -1, -1], [1, 1, 1]], dtype=torch.float64)
        w = init.hadamard_(poisoned((5, 3), torch.float64), backend=backend)
        assert torch.equal(w, h * 2.0 ** -1.5)
        w = init.hadamard_(poisoned((5, 3), torch.float64), "code", backend=backend)
        assert torch.equal(w, h * 2.0 ** -1.5)
        w = init.hadamard_(poisoned((5, 3), torch.float64), scale="paper", backend=backend)
        assert torch.equal(w, h * 0.5)
        w = init.hadamard_(poisoned((5, 3), torch.float64), scale=3.0, backend=backend)
        assert torch.equal(w, h * 3.0)

    def test_hadamard_equals_scipy(self, backend):
        scipy_linalg = pytest.importorskip("scipy.linalg")
        for out, inp in [(64, 64), (100, 37), (37, 100), (1, 1)]:
            p = reference.next_power_of_two(max(out, inp))
            w = init.hadamard_(poisoned((out, inp), torch.float64), scale=1.0, backend=backend)
            assert torch.equal(w, torch.tensor(scipy_linalg.hadamard(p)[:out, :inp], dtype=torch.float64))

    def test_idiz_in_1(self, backend):
        # out >= in == 1: the -eps entry (m + 1) mod 1 = 0 meets +eps; -eps wins (documented)
        w = init.idiz_(poisoned((3, 1)), eps=0.5, backend=backend)
        assert torch.equal(w, torch.full((3, 1), -0.5))


# ----------------------------------------------------------------------------------------------
# Every initializer x backend x dtype against the dense reference, bitwise
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,fn,params", INITIALIZERS, ids=INIT_IDS)
def test_against_reference(name, fn, params, backend, dtype):
    for shape in SHAPES_2D + SHAPES_CONV:
        w = poisoned(shape, dtype)
        out = fn(w, **params, backend=backend)
        assert out is w
        assert w.dtype == dtype and w.device.type == "cpu"
        assert_bitwise(w, ref(name, shape, params, dtype), f"{name}{params} {shape} {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_contiguous_and_threads(backend):
    # long rows (pieces of a run split over threads) and many rows
    for shape in [(3, 70000), (1, 1 << 17), (2000, 129)]:
        for name, fn, params in [("hadamard", init.hadamard_, {}), ("idiz", init.idiz_, {"eps": 2.0}),
                                 ("idi", init.idi_, {"tau": 3.0})]:
            w = poisoned(shape)
            fn(w, **params, backend=backend)
            assert_bitwise(w, ref(name, shape, params), f"{name} {shape}")


# ----------------------------------------------------------------------------------------------
# Non-contiguous destinations, in place
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,fn,params", INITIALIZERS, ids=INIT_IDS)
def test_non_contiguous(name, fn, params, backend):
    for out_f, in_f in [(5, 3), (3, 5), (37, 100), (64, 16)]:
        expected = ref(name, (out_f, in_f), params)
        # a transposed view
        buf = poisoned((in_f, out_f))
        w = buf.t()
        assert fn(w, **params, backend=backend) is w
        assert_bitwise(w, expected, f"transposed {name} {(out_f, in_f)}")
        # a slice of a bigger buffer: the rest stays untouched
        big = poisoned((out_f + 5, in_f + 7))
        w = big[2:2 + out_f, 3:3 + in_f]
        fn(w, **params, backend=backend)
        assert_bitwise(w, expected, f"slice {name}")
        rest = big.clone()
        rest[2:2 + out_f, 3:3 + in_f] = 0
        assert torch.isnan(rest).sum() == big.numel() - out_f * in_f
        # a strided slice (every other column) of a transposed buffer
        big = poisoned((2 * in_f + 1, out_f))
        w = big.t()[:, ::2][:, :in_f]
        fn(w, **params, backend=backend)
        assert_bitwise(w, expected, f"strided {name}")
    # conv weights: channels_last, and a permuted buffer
    for shape in [(6, 4, 3, 3), (4, 6, 3, 2)]:
        expected = ref(name, shape, params)
        w = poisoned(shape).to(memory_format=torch.channels_last)
        fn(w, **params, backend=backend)
        assert_bitwise(w, expected, f"channels_last {name} {shape}")
        w = poisoned((shape[3], shape[1], shape[2], shape[0])).permute(3, 1, 2, 0)
        fn(w, **params, backend=backend)
        assert_bitwise(w, expected, f"permuted {name} {shape}")


# ----------------------------------------------------------------------------------------------
# Shards: blocks filled with offset= / full_shape= reassemble the full tensor
# ----------------------------------------------------------------------------------------------
def splits(n, cuts):
    edges = sorted({0, n, *[c for c in cuts if 0 < c < n]})
    return list(zip(edges[:-1], edges[1:]))


SHARD_CASES = [
    ((37, 100), [[1, 2, 20], [7, 50, 99]]),        # uneven, 1-row and 1-column blocks
    ((100, 37), [[33, 34, 99], [5, 36]]),
    ((5, 3), [[1, 2, 3, 4], [1, 2]]),             # every row its own shard
    ((64, 64), [[13], [31, 32, 33]]),
    ((6, 4, 3, 3), [[1, 4], [3], [1, 2], [2]]),   # conv: shard kernel dims too
    ((3, 8, 5), [[2], [1, 5], [4]]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,fn,params", INITIALIZERS, ids=INIT_IDS)
def test_shards_reassemble(name, fn, params, backend):
    import itertools
    for full_shape, cuts in SHARD_CASES:
        expected = ref(name, full_shape, params)
        whole = poisoned(full_shape)
        blocks = [splits(n, c) for n, c in zip(full_shape, cuts)]
        for block in itertools.product(*blocks):
            offset = [b[0] for b in block]
            sizes = [b[1] - b[0] for b in block]
            shard = poisoned(sizes)  # its own contiguous tensor
            assert fn(shard, **params, offset=offset, full_shape=full_shape, backend=backend) is shard
            whole[tuple(slice(a, b) for a, b in block)] = shard
            # and in place, as a view of a full-size buffer
        assert_bitwise(whole, expected, f"shards {name} {full_shape}")
        whole2 = poisoned(full_shape)
        for block in itertools.product(*blocks):
            view = whole2[tuple(slice(a, b) for a, b in block)]
            fn(view, **params, offset=[b[0] for b in block], full_shape=full_shape, backend=backend)
        assert_bitwise(whole2, expected, f"in-place shards {name} {full_shape}")


# ----------------------------------------------------------------------------------------------
# torch.nn.init conventions
# ----------------------------------------------------------------------------------------------
ALL_FNS = [init.partial_identity_, init.hadamard_, init.zero_init_, init.idi_, init.idiz_, init.idic_,
           init.idizc_]


@pytest.mark.parametrize("fn", ALL_FNS, ids=lambda f: f.__name__)
def test_meta_is_a_noop_with_warning(fn):
    w = torch.empty(4, 3, device="meta")
    with pytest.warns(UserWarning, match="meta"):
        assert fn(w) is w
    assert w.is_meta


@pytest.mark.parametrize("fn", ALL_FNS, ids=lambda f: f.__name__)
def test_no_autograd_history(fn):
    p = nn.Parameter(torch.randn(6, 4))
    out = fn(p)
    assert out is p and p.grad_fn is None and p.requires_grad and p.is_leaf
    loss = (p * 2).sum()
    loss.backward()  # still a normal leaf
    assert p.grad is not None
    # inside an enabled-grad region, on a non-leaf too
    with torch.enable_grad():
        x = torch.randn(3, 3, requires_grad=True) * 1
        fn(x)
        assert x.grad_fn is not None  # the multiplication, nothing from the init


@pytest.mark.parametrize("fn", ALL_FNS, ids=lambda f: f.__name__)
def test_dtype_device_kept(fn):
    for dtype in DTYPES:
        w = torch.empty(5, 4, dtype=dtype)
        ptr = w.data_ptr()
        assert fn(w) is w and w.dtype == dtype and w.device.type == "cpu" and w.data_ptr() == ptr


def test_default_backend_is_cpp_on_cpu():
    if "cpp" in BACKENDS:
        assert zerofwht._backends.select_init(torch.empty(2, 2)).name == "cpp"
    rows = zerofwht.init_backends()
    assert {r["name"] for r in rows} == {"cpp", "cuda", "triton", "torch"}
    for r in rows:
        assert r["available"] or r["reason"]


# ----------------------------------------------------------------------------------------------
# Bad input: clear errors naming the argument
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", ALL_FNS, ids=lambda f: f.__name__)
def test_errors(fn):
    with pytest.raises(ValueError, match=r"w must have at least 2 dimensions.*1-d"):
        fn(torch.empty(5))
    with pytest.raises(ValueError, match=r"w must have at least 2 dimensions"):
        fn(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"w has a zero-size dimension.*\(0, 3\)"):
        fn(torch.empty(0, 3))
    with pytest.raises(ValueError, match=r"w has a zero-size dimension"):
        fn(torch.empty(4, 3, 0))
    with pytest.raises(TypeError, match=r"w must be a floating tensor.*int64"):
        fn(torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"w must be a floating tensor.*complex"):
        fn(torch.zeros(3, 3, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"w must be a torch.Tensor"):
        fn([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"offset\[0\]=3 with w.shape\[0\]=2 lies outside full_shape\[0\]=4"):
        fn(torch.empty(2, 3), offset=(3, 0), full_shape=(4, 3))
    with pytest.raises(ValueError, match=r"offset\[1\]=-1"):
        fn(torch.empty(2, 3), offset=(0, -1), full_shape=(4, 3))
    with pytest.raises(ValueError, match=r"offset\[1\]=0 with w.shape\[1\]=3 lies outside full_shape\[1\]=2"):
        fn(torch.empty(2, 3), offset=(0, 0), full_shape=(4, 2))
    with pytest.raises(ValueError, match=r"offset must have one entry per dimension of w \(2\)"):
        fn(torch.empty(2, 3), offset=(0,), full_shape=(4, 3))
    with pytest.raises(ValueError, match=r"full_shape must have one entry per dimension"):
        fn(torch.empty(2, 3), full_shape=(4, 3, 1))
    with pytest.raises(ValueError, match=r"offset=.*needs full_shape="):
        fn(torch.empty(2, 3), offset=(1, 0))
    with pytest.raises(TypeError, match=r"offset must contain ints"):
        fn(torch.empty(2, 3), offset=(0.5, 0), full_shape=(4, 3))
    with pytest.raises(ValueError, match=r"full_shape has a zero-size dimension"):
        fn(torch.empty(2, 3), offset=(0, 0), full_shape=(4, 0))
    with pytest.raises(ValueError, match=r"not a known init backend"):
        fn(torch.empty(2, 3), backend="nope")
    with pytest.raises(RuntimeError, match=r"init backend 'cuda' cannot fill this tensor: "):
        fn(torch.empty(2, 3), backend="cuda")


def test_parameter_errors():
    for fn in (init.idiz_, init.idizc_):
        with pytest.raises(ValueError, match=r"eps must be >= 0, got eps=-1"):
            fn(torch.empty(3, 3), eps=-1.0)
        with pytest.raises(TypeError, match=r"eps must be a real number"):
            fn(torch.empty(3, 3), eps="small")
    with pytest.raises(ValueError, match=r"tau must be finite, got tau=nan"):
        init.idi_(torch.empty(3, 3), tau=float("nan"))
    with pytest.raises(ValueError, match=r"noise_std must be >= 0"):
        init.idi_(torch.empty(3, 3), noise_std=-0.1)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator"):
        init.idi_(torch.empty(3, 3), noise_std=0.1, generator=3)
    with pytest.raises(ValueError, match=r'scale must be None, "code", "paper" or a number, got scale=.pape.'):
        init.hadamard_(torch.empty(3, 3), scale="pape")
    with pytest.raises(ValueError, match=r"scale must be finite"):
        init.hadamard_(torch.empty(3, 3), scale=float("inf"))


def test_op_level_errors():
    if "cpp" not in BACKENDS:
        pytest.skip("no C++ op")
    op = torch.ops.zerofwht.init_fill_
    with pytest.raises(ValueError, match=r"offset\[1\]=2 with w.shape\[1\]=3 lies outside full_shape\[1\]=4"):
        op(torch.empty(2, 3), 2, 1.0, 0, [0, 2], [4, 4])
    with pytest.raises(ValueError, match=r"w must have 2 to 6 dimensions"):
        op(torch.empty(3), 2, 1.0, 0, [0], [3])
    with pytest.raises(ValueError, match=r"w has a zero-size dimension"):
        op(torch.empty(0, 3), 2, 1.0, 0, [0, 0], [1, 3])
    with pytest.raises(ValueError, match=r"kind must be in \[0, 5\), got kind=7"):
        op(torch.empty(2, 3), 7, 1.0, 0, [0, 0], [2, 3])
    with pytest.raises(TypeError, match=r"w must be a floating tensor"):
        op(torch.empty(2, 3, dtype=torch.int32), 2, 1.0, 0, [0, 0], [2, 3])
    with pytest.raises(RuntimeError, match=r"internal overlap"):
        op(torch.empty(1, 3).expand(4, 3), 2, 1.0, 0, [0, 0], [4, 3])
    with pytest.raises(ValueError, match=r"offset\[0\]"):
        torch.ops.zerofwht.init_fill_torch_(torch.empty(2, 3), 2, 1.0, 0, [5, 0], [4, 3])


# ----------------------------------------------------------------------------------------------
# Op registration: opcheck (schema, fake, functionalization) and torch.compile
# ----------------------------------------------------------------------------------------------
def test_opcheck():
    ops = [torch.ops.zerofwht.init_fill_torch_.default]
    if "cpp" in BACKENDS:
        ops.append(torch.ops.zerofwht.init_fill_.default)
    for op in ops:
        for args in [(torch.empty(5, 3), 2, 0.5, 0, [0, 0], [5, 3]),
                     (torch.empty(4, 6).t(), 4, 1e-3, 0, [1, 2], [9, 9]),
                     (torch.empty(4, 2, 3, 3, dtype=torch.float64), 1, 1.0, 1, [0, 0, 0, 0], [4, 2, 3, 3])]:
            torch.library.opcheck(op, args)


def test_compile_fullgraph():
    def f(w):
        init.fill_(w, init.KIND_HADAMARD, 0.5, 0, [0, 0], list(w.shape))
        return w * 2

    w = torch.empty(8, 5)
    out = torch.compile(f, backend="aot_eager", fullgraph=True)(w)
    assert torch.equal(out, 2 * ref("hadamard", (8, 5), {"scale": 0.5}))
    assert torch.equal(w, ref("hadamard", (8, 5), {"scale": 0.5}))


# ----------------------------------------------------------------------------------------------
# IDI loosening noise
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_idi_noise(backend):
    shape, tau, std = (37, 10), 1.5, 0.1
    w1 = init.idi_(poisoned(shape), tau, std, torch.Generator().manual_seed(3), backend=backend)
    w2 = init.idi_(poisoned(shape), tau, std, torch.Generator().manual_seed(3), backend=backend)
    w3 = init.idi_(poisoned(shape), tau, std, torch.Generator().manual_seed(4), backend=backend)
    assert torch.equal(w1, w2) and not torch.equal(w1, w3)
    base = ref("idi", shape, {"tau": tau})
    mask = base != 0
    assert torch.count_nonzero(w1[~mask]) == 0          # only the tau entries move
    draws = torch.empty(shape[0]).normal_(tau, std, generator=torch.Generator().manual_seed(3))
    assert torch.equal(w1[mask], draws)                  # draw m belongs to row m
    # shards from identically seeded generators reproduce the full weight
    whole = poisoned(shape)
    for (r0, r1), (c0, c1) in [((0, 13), (0, 4)), ((0, 13), (4, 10)), ((13, 37), (0, 10))]:
        shard = poisoned((r1 - r0, c1 - c0))
        init.idi_(shard, tau, std, torch.Generator().manual_seed(3), offset=(r0, c0),
                  full_shape=shape, backend=backend)
        whole[r0:r1, c0:c1] = shard
    assert torch.equal(whole, w1)
    # conv weight (centre tap)
    w = init.idi_(poisoned((6, 4, 3, 3)), 1.0, 0.5, torch.Generator().manual_seed(0), backend=backend)
    base = ref("idi", (6, 4, 3, 3), {})
    assert torch.count_nonzero(w[base == 0]) == 0 and torch.count_nonzero(w[base != 0] == 1.0) == 0


# ----------------------------------------------------------------------------------------------
# Model level
# ----------------------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        return x + self.conv2(torch.relu(self.conv1(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = Block(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(8, 32)
        self.conv1d = nn.Conv1d(4, 6, 5)
        self.conv3d = nn.Conv3d(2, 3, 3)
        self.head = nn.Linear(32, 10)


def expected_weight(rule, params, shape):
    name = rule.rstrip("_").replace("zero_init", "zero")
    if name == "zeros":
        return torch.zeros(shape)
    p = {k: v for k, v in params.items() if k in ("tau", "eps")}
    return ref(name, shape, p)


@pytest.mark.parametrize("scheme", init.SCHEMES)
def test_init_model(scheme):
    torch.manual_seed(0)
    net = Net()
    summary = init.init_model_(net, scheme, residual_last=["block.conv2"],
                               generator=torch.Generator().manual_seed(1))
    names = [r["name"] for r in summary]
    assert names == ["stem", "block.conv1", "block.conv2", "fc1", "conv1d", "conv3d", "head"]
    by_name = {r["name"]: r for r in summary}
    for rec in summary:
        mod = net.get_submodule(rec["name"])
        assert rec["shape"] == tuple(mod.weight.shape)
        assert_bitwise(mod.weight.detach(), expected_weight(rec["rule"], rec["params"], rec["shape"]),
                       f"{scheme} {rec['name']}")
        if mod.bias is None:
            assert rec["bias"] is None
        elif scheme == "zero_weight_random_bias":
            assert rec["bias"].startswith("normal") and torch.count_nonzero(mod.bias) == mod.bias.numel()
        else:
            assert rec["bias"] == "zeros" and torch.count_nonzero(mod.bias) == 0
    if scheme == "idinit":
        assert by_name["stem"]["rule"] == "idic_" and by_name["stem"]["params"] == {"tau": math.sqrt(2.0)}
        assert by_name["block.conv1"]["rule"] == "idic_" and by_name["block.conv1"]["params"] == {"tau": 1.0}
        assert by_name["block.conv2"]["rule"] == "idizc_"
        assert by_name["fc1"]["rule"] == "idi_"
        assert by_name["head"]["rule"] == "idiz_" and by_name["head"]["params"]["classifier"]
    if scheme == "zero":
        # ZerO: the residual branch's last layer starts at zero, every other layer by Algorithm 1
        assert by_name["block.conv2"]["rule"] == "zeros_"
        assert all(r["rule"] == "zero_init_" for r in summary if r["name"] != "block.conv2")
    if scheme == "zero_weight_random_bias":  # reproducible from the generator
        net2 = Net()
        init.init_model_(net2, scheme, generator=torch.Generator().manual_seed(1))
        assert torch.equal(net.stem.bias, net2.stem.bias)
        assert torch.equal(net.head.bias, net2.head.bias)


def test_init_model_options():
    net = Net()
    init.init_model_(net, "zero_weight_random_bias", bias_init="uniform", bias_a=0.5,
                     generator=torch.Generator().manual_seed(0))
    assert float(net.head.bias.detach().min()) >= 0 and float(net.head.bias.detach().max()) < 0.5
    s = init.init_model_(net, "idinit", residual_last=[net.block.conv2], classifier=None,
                         first_tau=None, tau=0.5)
    assert {r["name"]: r["rule"] for r in s}["head"] == "idi_"
    assert s[0]["params"] == {"tau": 0.5}
    with pytest.raises(ValueError, match=r"scheme must be one of"):
        init.init_model_(net, "xavier")
    with pytest.raises(ValueError, match=r"residual_last: 'nope' is not the name of a Linear/Conv layer"):
        init.init_model_(net, "idinit", residual_last=["nope"])
    with pytest.raises(ValueError, match=r'bias_init must be "normal" or "uniform"'):
        init.init_model_(net, "zero_weight_random_bias", bias_init="gauss")


def test_meta_model_to_empty_then_init():
    with torch.device("meta"):
        net = Net()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = init.init_model_(net, "zero")
    assert all(r["rule"] == "skipped (meta)" for r in summary)
    assert any("meta" in str(w.message) for w in caught)
    net.to_empty(device="cpu")
    summary = init.init_model_(net, "zero")
    for rec in summary:
        mod = net.get_submodule(rec["name"])
        assert mod.weight.device.type == "cpu"
        assert_bitwise(mod.weight.detach(), ref("zero", rec["shape"], {}), rec["name"])
    # and directly on a materialized meta tensor
    with torch.device("meta"):
        lin = nn.Linear(300, 700, dtype=torch.bfloat16)
    lin.to_empty(device="cpu")
    init.hadamard_(lin.weight)
    assert_bitwise(lin.weight.detach(), ref("hadamard", (700, 300), {}, torch.bfloat16), "meta->cpu")


def test_reference_hadamard_paths_agree():
    # the dense reference's two ways to get H_P[:r, :c] (Sylvester slice / parity of i & j)
    import zerofwht.reference as R
    sylvester = R.hadamard_matrix(8192, dtype=torch.float64)[:40, :5000]
    assert torch.equal(R._hadamard_top_left(40, 5000), sylvester)
    assert torch.equal(R._hadamard_top_left(3000, 17), R.hadamard_matrix(4096, dtype=torch.float64)[:3000, :17])


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "cpp"])
def test_large_streaming_paths(backend):
    # > 8 MiB: the C++ kernel writes contiguous rows with non-temporal stores; check every rule,
    # an odd row length (rows start at every alignment) and a misaligned slice of a bigger buffer
    shape = (2100, 2049)
    for dtype in (torch.float32, torch.float16):
        for name, fn, params in [("hadamard", init.hadamard_, {}), ("idiz", init.idiz_, {"eps": 2.0}),
                                 ("zero", init.zero_init_, {}), ("idi", init.idi_, {"tau": 3.0})]:
            expected = ref(name, shape, params, dtype)
            w = poisoned(shape, dtype)
            fn(w, **params, backend=backend)
            assert_bitwise(w, expected, f"{name} {dtype}")
            big = poisoned((shape[0] + 1, shape[1] + 3), dtype)
            w = big[1:, 1:-2]
            fn(w, **params, backend=backend)
            assert_bitwise(w, expected, f"{name} {dtype} slice")
            assert int(torch.isnan(big).sum()) == big.numel() - w.numel()
