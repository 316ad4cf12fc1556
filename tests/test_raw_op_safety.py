"""Direct torch.ops.zerofwht.* calls with unusual layouts and bad arguments: every call either gives
the result of the pure-PyTorch op or raises a clear Python exception; none may read or write
memory it does not own. The C++ glue keeps exactly the checks that guard this (the public
functions check their arguments in Python first), so these tests reach the kernels past the
Python layer. They are meant to run under AddressSanitizer too (scripts/sanitize_check.sh), where
an out-of-bounds access aborts the run instead of passing unnoticed.
"""
from __future__ import annotations

import pytest
import torch

import zerofwht  # noqa: F401  (registers the ops)

pytestmark = pytest.mark.skipif(not hasattr(torch.ops.zerofwht, "fwht_out")
                                or not torch.ops.zerofwht.fwht.default.has_kernel_for_dispatch_key("CPU"),
                                reason="zerofwht._C (the C++ CPU op) is not built")

ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


def reference(x, n, out_features, scale):
    return torch.ops.zerofwht.fwht_torch(x, n, out_features, scale)


def rand(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


# Inputs the kernel reads in place or through a copy: expanded rows, wide row strides, many batch
# dimensions, a strided last dimension, a storage offset.
def odd_inputs():
    base = rand(4000)
    yield "expanded_rows", rand(1, 24).expand(5, 24)
    yield "wide_row_stride", base[: 7 * 100].view(7, 100)[:, :24]
    yield "eight_batch_dims", rand(2, 1, 2, 3, 1, 2, 2, 3, 16).transpose(0, 2)
    yield "strided_last_dim", base[:96].view(2, 48)[:, ::2]
    yield "storage_offset", base[1:1 + 3 * 40].view(3, 40)
    yield "empty_rows", rand(0, 8)
    yield "empty_last_dim", rand(3, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("name,x", list(odd_inputs()), ids=[n for n, _ in odd_inputs()])
def test_fwht_odd_input_layouts_match_torch_op(name, x, dtype):
    x = x.to(dtype)
    d_in = x.shape[-1]
    n = max(1, 1 << max(d_in - 1, 0).bit_length())
    for n_, out_features in [(n, n), (2 * n, max(1, n // 2)), (1 << 12, 4096 - 3)]:
        y = torch.ops.zerofwht.fwht(x, n_, out_features, 0.5)
        assert torch.equal(y, reference(x, n_, out_features, 0.5)), (name, n_, out_features)


def test_fwht_out_odd_output_layouts():
    x = rand(6, 32)
    want = reference(x, 32, 32, 1.0)
    store = torch.full((600,), 7.0)
    outs = {
        "strided_last_dim": store[:6 * 64].view(6, 64)[:, ::2],
        "wide_row_stride": store[: 6 * 90].view(6, 90)[:, 5:37],
        "transposed": torch.empty(32, 6).t(),
    }
    for name, out in outs.items():
        torch.ops.zerofwht.fwht_out(x, 32, 32, 1.0, out)
        assert torch.equal(out, want), name
    # Nothing outside the view was written.
    assert (store[6 * 90:] == 7.0).all()


def test_fwht_out_overlapping_x_goes_through_a_temporary():
    buf = rand(10 * 16)
    x = buf[: 8 * 16].view(8, 16)
    out = buf[16:].view(9, 16)[:8]  # rows shifted by one: partial overlap
    want = reference(x.clone(), 16, 16, 1.0)
    torch.ops.zerofwht.fwht_out(x, 16, 16, 1.0, out)
    assert torch.equal(out, want)


@pytest.mark.parametrize("args", [
    (8, 8, "expanded_out"),
    (8, -1, None), (8, 9, None), (6, 6, None), (-8, 8, None), (4, 4, None), (1 << 41, 8, None),
], ids=["expanded_out", "out_features_negative", "out_features_past_n", "n_not_power_of_two",
        "n_negative", "n_shorter_than_row", "n_too_large"])
def test_bad_fwht_arguments_raise(args):
    n, out_features, kind = args
    x = rand(3, 8)
    with pytest.raises(ERRORS):
        if kind == "expanded_out":
            torch.ops.zerofwht.fwht_out(x, n, out_features, 1.0, torch.empty(1, 8).expand(3, 8))
        else:
            torch.ops.zerofwht.fwht(x, n, out_features, 1.0)
    with pytest.raises(ERRORS):
        out = torch.empty(3, max(out_features, 1))
        torch.ops.zerofwht.fwht_out(x, n if kind is None else 6, out_features, 1.0, out)


@pytest.mark.parametrize("bad", [
    ("wrong_shape", lambda: torch.empty(3, 7)),
    ("wrong_dtype", lambda: torch.empty(3, 8, dtype=torch.float64)),
    ("wrong_rank", lambda: torch.empty(24)),
    ("int_out", lambda: torch.empty(3, 8, dtype=torch.int32)),
], ids=lambda b: b[0])
def test_bad_out_raises(bad):
    with pytest.raises(ERRORS):
        torch.ops.zerofwht.fwht_out(rand(3, 8), 8, 8, 1.0, bad[1]())


def test_fwht_inplace_bad_tensors_raise():
    for x in [torch.tensor(1.0), rand(3, 6), torch.empty(1, 8).expand(3, 8), torch.ones(3, 8, dtype=torch.int64)]:
        with pytest.raises(ERRORS):
            torch.ops.zerofwht.fwht_inplace(x, 1.0)


# ---- init_fill_ -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", range(5))
def test_init_fill_odd_layouts_match_torch_op(kind):
    cases = [
        (lambda: torch.empty(6, 10).t(), [1, 2], [12, 9], 0),
        (lambda: torch.empty(40)[::2].view(4, 5), [0, 0], [4, 5], 0),
        (lambda: torch.empty(4, 3, 3, 5).permute(0, 3, 1, 2), [0, 0, 0, 0], [4, 5, 3, 3], 1),
        (lambda: torch.empty(3, 7, 2, 2, dtype=torch.float16)[:, 2:5], [2, 3, 0, 0], [9, 9, 2, 2], 0),
    ]
    for make, offset, full_shape, tap_mode in cases:
        w, w_ref = make(), make()
        w.fill_(3.0), w_ref.fill_(3.0)
        torch.ops.zerofwht.init_fill_(w, kind, 0.25, tap_mode, offset, full_shape)
        torch.ops.zerofwht.init_fill_torch_(w_ref, kind, 0.25, tap_mode, offset, full_shape)
        assert torch.equal(w, w_ref), (kind, w.shape, offset, full_shape, tap_mode)


@pytest.mark.parametrize("args", [
    (lambda: torch.empty(2, 3), -1, 0, [0, 0], [2, 3]),
    (lambda: torch.empty(2, 3), 5, 0, [0, 0], [2, 3]),
    (lambda: torch.empty(2, 3), 2, 2, [0, 0], [2, 3]),
    (lambda: torch.empty(2, 3), 2, 0, [0], [2, 3]),
    (lambda: torch.empty(2, 3), 2, 0, [0, 0], [2]),
    (lambda: torch.empty(2, 3), 2, 0, [0, -1], [2, 3]),
    (lambda: torch.empty(2, 3), 2, 0, [0, 0], [2, 1 << 62]),
    (lambda: torch.empty(2, 0), 2, 0, [0, 0], [2, 0]),
    (lambda: torch.empty(1, 3).expand(4, 3), 2, 0, [0, 0], [4, 3]),
    (lambda: torch.empty(3), 2, 0, [0], [3]),
    (lambda: torch.empty(2, 3, dtype=torch.int16), 2, 0, [0, 0], [2, 3]),
], ids=["kind_negative", "kind_too_large", "tap_mode_2", "offset_short", "full_shape_short",
        "offset_negative", "full_shape_overflow", "zero_size", "expanded", "one_dim", "int16"])
def test_bad_init_fill_arguments_raise(args):
    make, kind, tap_mode, offset, full_shape = args
    with pytest.raises(ERRORS):
        torch.ops.zerofwht.init_fill_(make(), kind, 1.0, tap_mode, offset, full_shape)
