"""The Triton FWHT backend (zerofwht.triton_fwht) without a GPU.

* Every kernel runs in Triton's CPU interpreter (TRITON_INTERPRET=1) on CPU tensors against the
  fp64 dense reference computed from the same rounded input: single pass for every N = 2^0 ..
  2^12 and every dtype (rows chosen so that the last program is partial), rectangular
  d_in / out_features both ways, scales, row strides, out= / in place, the multi-pass plan (forced
  small on-chip limits: 2 and 3 column passes on small N; and the real plan at N = 2^16), the
  registered ops (fake kernel, autograd, double backward, opcheck), NaN / Inf propagation.
  triton 3.9 decides interpretation when a kernel is decorated; the launcher builds the
  interpreted twin of a kernel when the variable is set at launch time, so setting it per test
  (fixture below) is enough.
* The ahead-of-time compile for sm_80 / sm_90 of a subset of the configurations
  (scripts/aot_triton_fwht.py; run the script by hand for all of them).

Outputs are NaN-poisoned before a kernel writes them.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

pytest.importorskip("triton")

from zerofwht import triton_fwht as tf  # noqa: E402

from conftest import assert_close_to_reference, dense_reference, dtype_id, make_input, poison  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
DTYPE_PARAMS = [pytest.param(dt, id=dtype_id(dt)) for dt in DTYPES]
SMALL = tf.Limits(single=3, row=2, col=2)  # forces multi-pass plans from N = 16 on


@pytest.fixture(autouse=True)
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    yield


def run(x, n, out_features, scale=1.0, **kw):
    """fwht_triton_launch into a NaN-poisoned out=."""
    out = poison(torch.empty((*x.shape[:-1], out_features), dtype=x.dtype))
    got = tf.fwht_triton_launch(x, n, out_features, scale, out, **kw)
    assert got is out
    return out


def check(x, n, out_features, scale=1.0, **kw):
    got = run(x, n, out_features, scale, **kw)
    assert_close_to_reference(got, dense_reference(x, n, out_features=out_features, scale=scale), x.dtype, n)


# ----------------------------------------------------------------------------------------------
# Plans and configurations (pure Python)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_plan_covers_every_bit_within_limits(dtype):
    lim = tf.default_limits(dtype)
    for L in range(tf.MAX_LOG_N + 1):
        passes = tf.plan(1 << L, dtype)
        assert sum(k for _, k in passes) == L
        assert passes[0][0] == "rows" and all(kind == "cols" for kind, _ in passes[1:])
        if L <= lim.single:
            assert len(passes) == 1
        else:
            assert passes[0][1] <= lim.row and all(1 <= k <= lim.col for _, k in passes[1:])
        for kind, meta in tf.pass_configs(1 << L, dtype):
            elems = meta["R"] * meta["N"] if kind == "rows" else meta["BC"] * meta["M"]
            # at most 64 elements per thread (no spills, see the AOT test)
            assert elems <= 64 * 32 * meta["num_warps"], (L, kind, meta)
    assert len(tf.plan(1 << 24, dtype)) == 2  # the design bar: 2^24 in two passes


def test_limits_follow_shared_memory():
    for dtype in DTYPES:  # sm_80 (163 KB) and sm_90 (227 KB): the defaults
        assert tf.limits_for_shared_memory(dtype, 163 * 1024) == tf.default_limits(dtype)
        assert tf.limits_for_shared_memory(dtype, 227 * 1024) == tf.default_limits(dtype)
    assert tf.limits_for_shared_memory(torch.float16, 99 * 1024) == tf.Limits(14, 14, 10)  # sm_86/89
    assert tf.limits_for_shared_memory(torch.float64, 99 * 1024) == tf.Limits(13, 13, 9)
    assert tf.limits_for_shared_memory(torch.float32, 64 * 1024) == tf.Limits(14, 14, 10)  # sm_75
    assert tf.device_limits(torch.empty(1, dtype=torch.bfloat16)) == tf.default_limits(torch.bfloat16)


def test_kernel_configs_cover_the_launcher():
    cfgs = tf.kernel_configs()
    keys = {(c["kernel"], c["single"], c["last"], c["src"], c["dst"], tuple(sorted(c["constexprs"].items())),
             c["num_warps"]) for c in cfgs}
    assert len(keys) == len(cfgs)
    assert sum(c["single"] for c in cfgs) == 16 * 3 + 15  # N = 2^0..2^15 (fp64: ..2^14)
    assert tf.kernel_configs() == cfgs  # deterministic order (the AOT script indexes it)
    # what the launcher runs is listed (the default plans of a few sizes and dtypes)
    for dtype in DTYPES:
        for log_n in (0, 7, 15, 16, 24, 30):
            for i, (kind, meta) in enumerate(tf.pass_configs(1 << log_n, dtype)):
                consts = {k: v for k, v in meta.items() if k != "num_warps"}
                assert any(c["kernel"] == kind and c["src"] == (dtype if i == 0 else c["src"])
                           and {k: v for k, v in c["constexprs"].items() if k != "F64"} == consts
                           and c["num_warps"] == meta["num_warps"] for c in cfgs), (dtype, log_n, kind, meta)


def test_refuse_reasons(monkeypatch):
    x = torch.randn(2, 8)
    assert tf.refuse(x, 8) is None  # CPU under the interpreter
    assert "int" in tf.refuse(torch.ones(2, 8, dtype=torch.int32), 8)
    assert "2^30" in tf.refuse(x, 1 << 31)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert "CUDA" in tf.refuse(x, 8)
    assert "meta" in tf.refuse(x.to("meta"), 8)


# ----------------------------------------------------------------------------------------------
# Single pass
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("log_n", range(0, 13), ids=lambda k: f"n2^{k}")
def test_single_pass_every_n(log_n, dtype):
    n = 1 << log_n
    meta = tf.pass_configs(n, dtype)[0][1]
    rows = meta["R"] + 3 if meta["R"] > 1 else 3  # two programs, the last one partial
    x = make_input((rows, n), dtype, seed=log_n)
    check(x, n, n)


@pytest.mark.parametrize("dtype", [pytest.param(dt, id=dtype_id(dt)) for dt in (torch.float16, torch.float32)])
@pytest.mark.parametrize("log_n", range(13, 16), ids=lambda k: f"n2^{k}")
def test_single_pass_largest_n(log_n, dtype):
    n = 1 << log_n
    assert len(tf.plan(n, dtype)) == 1
    check(make_input((2, n), dtype, seed=log_n), n, n, scale=n ** -0.5)
    if log_n == 14:
        check(make_input((2, n), torch.float64, seed=log_n), n, n - 5)  # the largest fp64 single pass


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("d_in,n,out_features", [(5, 8, 8), (8, 8, 3), (5, 8, 6), (1, 16, 16), (16, 16, 1),
                                                 (1, 1, 1), (100, 128, 77), (77, 128, 100), (700, 1024, 1024),
                                                 (0, 4, 4)],
                         ids=lambda v: str(v))
def test_rectangular(d_in, n, out_features, dtype):
    x = make_input((2, 3, d_in), dtype, seed=d_in)
    if d_in == 0:  # pad of nothing: zeros
        assert torch.equal(run(x, n, out_features), torch.zeros(2, 3, out_features, dtype=dtype))
        return
    check(x, n, out_features, scale=0.75)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_scales(dtype):
    n = 64
    x = make_input((5, 50), dtype)
    for scale in (n ** -0.5, 1.0 / n, -3.25, 0.0):
        if scale == 0.0:
            assert torch.equal(run(x, n, n, scale), torch.zeros(5, n, dtype=dtype))
        else:
            check(x, n, n, scale)
    if dtype == torch.float64:  # a scale fp32 cannot carry (applied after the kernel) and a fine one
        check(x, n, 40, 1e-300)
        check(x, n, 40, 1.0 / 3.0)


def test_row_strides_and_layouts():
    buf = make_input((7, 300), torch.float32)
    x = buf[1:6, 17:117]  # row stride 300, offset
    check(x, 128, 128)
    check(make_input((4, 6, 20), torch.float16).transpose(0, 1), 32, 20)  # batch dims not mergeable: one copy
    check(make_input((16, 9), torch.float32).t(), 16, 16)  # last dim not contiguous: one copy
    check(make_input((3, 1, 4, 16), torch.bfloat16).expand(3, 2, 4, 16), 16, 16)  # stride-0 batch
    # out= through a strided view, and a layout without a (rows, out) view (temporary + copy_)
    x = make_input((6, 24), torch.float32)
    ref = dense_reference(x, 32, out_features=20)
    big = poison(torch.empty(6, 50))
    tf.fwht_triton_launch(x, 32, 20, 1.0, big[:, 10:30])
    assert_close_to_reference(big[:, 10:30], ref, torch.float32, 32)
    assert torch.isnan(big[:, :10]).all() and torch.isnan(big[:, 30:]).all()
    out_t = poison(torch.empty(20, 6)).t()
    tf.fwht_triton_launch(x, 32, 20, 1.0, out_t)
    assert_close_to_reference(out_t, ref, torch.float32, 32)


def test_in_place_and_nonfinite():
    x = make_input((9, 256), torch.float32)
    ref = dense_reference(x, 256, scale=0.5)
    assert tf.fwht_triton_launch(x, 256, 256, 0.5, x) is x
    assert_close_to_reference(x, ref, torch.float32, 256)
    x = make_input((3, 16), torch.float16)
    x[0, 3], x[1, 0] = float("nan"), float("inf")
    y = tf.fwht_triton_launch(x, 16, 16, 1.0)
    assert torch.isnan(y[0]).all() and not torch.isnan(y[2]).any()
    assert torch.isinf(y[1]).all()  # +inf in every output of row 1 (with signs)


def test_empty():
    assert tf.fwht_triton_launch(torch.empty(0, 8), 8, 4, 1.0).shape == (0, 4)
    assert tf.fwht_triton_launch(torch.empty(3, 0, 8), 8, 8, 1.0).shape == (3, 0, 8)


# ----------------------------------------------------------------------------------------------
# Multi-pass (radix split through global memory)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("d_in,n,out_features", [(16, 16, 16), (64, 64, 64), (50, 64, 33), (3, 64, 64),
                                                 (256, 256, 200), (130, 256, 256)],
                         ids=lambda v: str(v))
def test_multipass_forced_limits(d_in, n, out_features, dtype):
    plan = tf.plan(n, dtype, SMALL)
    assert len(plan) >= 2
    x = make_input((3, d_in), dtype, seed=n + d_in)
    check(x, n, out_features, scale=n ** -0.5, limits=SMALL)
    if dtype in (torch.float16, torch.bfloat16):  # fp32 intermediate
        check(x, n, out_features, scale=n ** -0.5, limits=SMALL, workspace_dtype=torch.float32)


def test_multipass_three_column_passes_and_in_place():
    lim = tf.Limits(single=2, row=1, col=1)
    assert [k for _, k in tf.plan(16, torch.float32, lim)] == [1, 1, 1, 1]
    x = make_input((5, 16), torch.float32)
    check(x, 16, 16, limits=lim)
    check(make_input((5, 11), torch.float64), 16, 9, 0.3, limits=lim)
    x = make_input((4, 64), torch.float16)
    ref = dense_reference(x, 64, scale=0.125)
    tf.fwht_triton_launch(x, 64, 64, 0.125, x, limits=SMALL)  # workspace = the tensor itself
    assert_close_to_reference(x, ref, torch.float16, 64)


@pytest.mark.parametrize("dtype,log_n,d_in,out_features",
                         [(torch.float16, 16, 3000, 1000), (torch.float32, 16, 1 << 16, 1 << 16),
                          (torch.float64, 15, 20000, 1 << 15), (torch.bfloat16, 20, 1000000, 1 << 20)],
                         ids=["fp16-2^16-pad+trunc", "fp32-2^16-square", "fp64-2^15-pad", "bf16-2^20-pad"])
def test_multipass_default_plan(dtype, log_n, d_in, out_features):
    n = 1 << log_n
    assert [k for _, k in tf.plan(n, dtype)] == [14, log_n - 14]
    x = make_input((2 if log_n < 20 else 1, d_in), dtype)
    check(x, n, out_features, scale=n ** -0.5)


# ----------------------------------------------------------------------------------------------
# Registered ops: functional / out= / in place, fake kernel, autograd, opcheck
# ----------------------------------------------------------------------------------------------
def test_ops_three_call_forms():
    x = make_input((2, 3, 20), torch.float32)
    ref = dense_reference(x, 32, out_features=24, scale=0.5)
    assert_close_to_reference(torch.ops.zerofwht.fwht_triton(x, 32, 24, 0.5), ref, torch.float32, 32)
    out = poison(torch.empty(2, 3, 24))
    torch.ops.zerofwht.fwht_triton_out(x, 32, 24, 0.5, out)
    assert_close_to_reference(out, ref, torch.float32, 32)
    y = make_input((4, 32), torch.bfloat16)
    ref = dense_reference(y, 32, scale=2.0)
    torch.ops.zerofwht.fwht_triton_inplace(y, 2.0)
    assert_close_to_reference(y, ref, torch.bfloat16, 32)
    with pytest.raises(ValueError, match="n must be a power of two"):
        torch.ops.zerofwht.fwht_triton(x, 24, 24, 1.0)
    with pytest.raises(ValueError, match="out_features"):
        torch.ops.zerofwht.fwht_triton(x, 32, 33, 1.0)


def test_fake_kernel_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        y = torch.ops.zerofwht.fwht_triton(torch.empty(4, 5, 100), 128, 77, 1.0)
    assert y.shape == (4, 5, 77) and y.dtype == torch.float32


def test_gradcheck_and_double_backward():
    x = make_input((3, 5), torch.float64).requires_grad_()
    fn = lambda t: torch.ops.zerofwht.fwht_triton(t, 8, 6, 0.7)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_opcheck():
    # test_aot_dispatch_* trace the launcher with fake tensors, which the CPU interpreter cannot
    # run (docs/design.md): they, and torch.compile, are for a GPU run.
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    x = make_input((3, 12), torch.float32)
    torch.library.opcheck(torch.ops.zerofwht.fwht_triton.default, (x, 16, 10, 0.5), test_utils=utils)
    torch.library.opcheck(torch.ops.zerofwht.fwht_triton_out.default, (x, 16, 10, 0.5, torch.empty(3, 10)),
                          test_utils=utils)
    torch.library.opcheck(torch.ops.zerofwht.fwht_triton_inplace.default, (make_input((3, 16)), 0.5),
                          test_utils=utils)


# ----------------------------------------------------------------------------------------------
# Ahead-of-time compile for sm_80 / sm_90 (a subset; all: python scripts/aot_triton_fwht.py)
# ----------------------------------------------------------------------------------------------
def test_aot_compile_subset_sm80_sm90(monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import aot_triton_fwht as aot
    finally:
        sys.path.pop(0)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cfgs = tf.kernel_configs()
    # the heaviest of each kind: the largest single pass (fp16, fp64), the largest column pass,
    # a many-rows small-N tile
    wanted = {("single", "float16", 15), ("single", "float64", 14), ("single", "float32", 4),
              ("cols", "float16", 10)}
    picked = []
    for i, c in enumerate(cfgs):
        k = c["constexprs"].get("LOG_N", c["constexprs"].get("LOG_M"))
        tag = ("single" if c["single"] else c["kernel"], str(c["src"]).replace("torch.", ""), k)
        if tag in wanted and c["src"] == c["dst"]:
            picked.append(i)
    assert len(picked) == len(wanted)
    results = aot.run(archs=(80, 90), variants=aot.VARIANTS, indices=set(picked), jobs=2)
    assert len(results) == 2 * 2 * len(picked)
    for r in results:
        assert not aot.problems(r, strict=True), (r["name"], r)
        assert r["regs"] <= 255
