"""Bad input: every case raises a clear error of the right type that names the argument and value
through the public functions and through the raw torch.ops."""
from __future__ import annotations

import re

import pytest
import torch

import zerofwht
from zerofwht import DimensionError

from conftest import make_input


def x8():
    return make_input((3, 8), torch.float32)


# ----------------------------------------------------------------------------------------------
# dtype and rank
# ----------------------------------------------------------------------------------------------
BAD_DTYPES = [
    pytest.param(torch.int64, "integer dtype torch.int64", id="int64"),
    pytest.param(torch.int32, "integer dtype torch.int32", id="int32"),
    pytest.param(torch.uint8, "integer dtype torch.uint8", id="uint8"),
    pytest.param(torch.bool, "bool dtype torch.bool", id="bool"),
    pytest.param(torch.complex64, "complex dtype torch.complex64", id="complex64"),
    pytest.param(torch.complex128, "complex dtype torch.complex128", id="complex128"),
]


@pytest.mark.parametrize("dtype,message", BAD_DTYPES)
@pytest.mark.parametrize("func", ["fwht", "fwht_", "hadamard_transform"])
def test_bad_dtype_is_type_error(func, dtype, message):
    x = torch.ones(2, 8).to(dtype)
    with pytest.raises(TypeError, match=rf"x must be a real floating tensor.*{message}"):
        getattr(zerofwht, func)(x)


@pytest.mark.parametrize("func", ["fwht", "fwht_", "hadamard_transform"])
def test_zero_dim_tensor_is_value_error(func):
    with pytest.raises(ValueError, match="x must have at least 1 dimension.*0-d"):
        getattr(zerofwht, func)(torch.tensor(1.5))


def test_not_a_tensor_is_type_error():
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        zerofwht.fwht([1.0, 2.0])


# ----------------------------------------------------------------------------------------------
# n, out_features, dim, norm, scale
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 752, 0, -8, 1000], ids=lambda n: f"n{n}")
def test_n_not_a_power_of_two(n):
    with pytest.raises(ValueError, match=rf"n must be a power of two, got n={n}\b"):
        zerofwht.fwht(x8(), n=n)


@pytest.mark.parametrize("n", [1, 4], ids=lambda n: f"n{n}")
def test_n_smaller_than_input(n):
    with pytest.raises(ValueError, match=rf"n={n} is smaller than the input size 8"):
        zerofwht.fwht(x8(), n=n)


@pytest.mark.parametrize("n", [8.0, "8", True], ids=lambda v: f"n-{type(v).__name__}")
def test_n_not_an_int(n):
    with pytest.raises(TypeError, match=r"n must be an int"):
        zerofwht.fwht(x8(), n=n)


@pytest.mark.parametrize("out_features", [9, 100, 0, -1], ids=lambda v: f"out_features{v}")
def test_out_features_out_of_range(out_features):
    with pytest.raises(ValueError, match=rf"out_features must be in \[1, n=8\], got out_features={out_features}\b"):
        zerofwht.fwht(x8(), out_features=out_features)


def test_out_features_checked_against_given_n():
    with pytest.raises(ValueError, match=r"out_features must be in \[1, n=16\], got out_features=17"):
        zerofwht.fwht(x8(), n=16, out_features=17)


@pytest.mark.parametrize("func", ["fwht", "fwht_"])
@pytest.mark.parametrize("dim", [2, -3, 10], ids=lambda d: f"dim{d}")
def test_dim_out_of_range(func, dim):
    x = x8()
    for exc in (DimensionError, IndexError, ValueError):
        with pytest.raises(exc, match=rf"dim={dim} is out of range for a tensor with 2 dimension"):
            getattr(zerofwht, func)(x, dim=dim)


def test_dimension_error_is_index_and_value_error():
    assert issubclass(DimensionError, IndexError) and issubclass(DimensionError, ValueError)


def test_dim_not_an_int():
    with pytest.raises(TypeError, match=r"dim must be an int, got float"):
        zerofwht.fwht(x8(), dim=1.0)


def test_unknown_norm():
    with pytest.raises(ValueError, match=r"norm='unitary'"):
        zerofwht.fwht(x8(), norm="unitary")


@pytest.mark.parametrize("func", ["fwht", "fwht_"])
def test_norm_and_scale_together(func):
    with pytest.raises(ValueError, match=r"either norm or scale.*norm='ortho', scale=0.5"):
        getattr(zerofwht, func)(x8(), norm="ortho", scale=0.5)


def test_scale_not_a_number():
    with pytest.raises(TypeError, match=r"scale must be a real number, got str 'a'"):
        zerofwht.fwht(x8(), scale="a")


# ----------------------------------------------------------------------------------------------
# fwht_
# ----------------------------------------------------------------------------------------------
def test_inplace_needs_n_equal_to_size():
    with pytest.raises(ValueError, match=r"x.shape\[dim\]=8 must equal n.*got n=16"):
        zerofwht.fwht_(x8(), n=16)


def test_inplace_needs_power_of_two_size():
    with pytest.raises(ValueError, match=r"x.shape\[dim\]=6 must equal n and be a power of two.*got n=6"):
        zerofwht.fwht_(make_input((2, 6)))


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_inplace_on_leaf_requiring_grad(backend):
    x = x8().requires_grad_()
    before = x.detach().clone()
    with pytest.raises(RuntimeError, match=r"fwht_: x is a leaf tensor that requires grad"):
        zerofwht.fwht_(x, backend=backend)
    assert torch.equal(x.detach(), before)


# ----------------------------------------------------------------------------------------------
# out=
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 7), (3, 16), (8, 3), (1, 3, 8), (3,)], ids=lambda s: "x".join(map(str, s)))
def test_out_wrong_shape(shape):
    with pytest.raises(ValueError, match=re.escape(f"out has shape {tuple(shape)}, expected (3, 8)")):
        zerofwht.fwht(x8(), out=torch.empty(shape))


def test_out_wrong_shape_for_out_features():
    with pytest.raises(ValueError, match=r"out has shape \(3, 8\), expected \(3, 5\)"):
        zerofwht.fwht(x8(), out_features=5, out=torch.empty(3, 8))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int32], ids=str)
def test_out_wrong_dtype(dtype):
    with pytest.raises(TypeError, match=rf"out has dtype {dtype}, expected x's dtype torch.float32"):
        zerofwht.fwht(x8(), out=torch.empty(3, 8, dtype=dtype))


def test_out_wrong_device():
    with pytest.raises(RuntimeError, match=r"out is on meta but x is on cpu"):
        zerofwht.fwht(x8(), out=torch.empty(3, 8, device="meta"))


def test_out_not_a_tensor():
    with pytest.raises(TypeError, match=r"out must be a torch.Tensor, got list"):
        zerofwht.fwht(x8(), out=[0.0] * 24)


@pytest.mark.parametrize("which", ["x", "out"])
def test_out_with_requires_grad(which):
    x = x8().requires_grad_(which == "x")
    out = torch.empty(3, 8, requires_grad=which == "out")
    with pytest.raises(RuntimeError, match=r"out=.*does not support automatic differentiation"):
        zerofwht.fwht(x, out=out)


def test_out_with_requires_grad_allowed_under_no_grad():
    x = x8().requires_grad_()
    out = torch.empty(3, 8)
    with torch.no_grad():
        zerofwht.fwht(x, out=out)
    assert not out.isnan().any()


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_out_with_internal_overlap(backend):
    out = torch.zeros(1, 8).expand(3, 8)
    with pytest.raises(RuntimeError, match=r"internal overlap|unsupported operation"):
        zerofwht.fwht(x8(), out=out, backend=backend)


# ----------------------------------------------------------------------------------------------
# backends
# ----------------------------------------------------------------------------------------------
def test_unknown_backend():
    with pytest.raises(ValueError, match=r"backend='bogus' is not a known backend"):
        zerofwht.fwht(x8(), backend="bogus")


def test_unknown_backend_from_environment(monkeypatch):
    monkeypatch.setenv("ZEROFWHT_BACKEND", "bogus")
    with pytest.raises(ValueError, match=r"ZEROFWHT_BACKEND='bogus' is not a known backend"):
        zerofwht.fwht(x8())


def test_backend_not_a_string():
    with pytest.raises(TypeError, match=r"backend must be a string or None, got int 3"):
        zerofwht.fwht(x8(), backend=3)


@pytest.mark.parametrize("name,reason", [("cuda", "built without CUDA kernels|runs on cuda tensors"),
                                         ("triton", "runs on CUDA tensors")])
def test_unavailable_backend_says_why(name, reason):
    with pytest.raises(RuntimeError, match=rf"backend '{name}' cannot run this input: .*({reason})"):
        zerofwht.fwht(x8(), backend=name)


@pytest.mark.parametrize("name", ["cuda", "triton"])
def test_unavailable_backend_from_environment(monkeypatch, name):
    monkeypatch.setenv("ZEROFWHT_BACKEND", name)
    with pytest.raises(RuntimeError, match=rf"backend '{name}' cannot run this input"):
        zerofwht.fwht(x8())


def test_cpp_backend_refuses_meta_tensor():
    with pytest.raises(RuntimeError, match=r"backend 'cpp' cannot run this input: it runs on cpu tensors"):
        zerofwht.fwht(torch.empty(3, 8, device="meta"), backend="cpp")


# ----------------------------------------------------------------------------------------------
# The raw ops (users may call torch.ops.zerofwht.* directly)
# ----------------------------------------------------------------------------------------------
RAW_FUNCTIONAL = ["fwht", "fwht_torch"]


@pytest.mark.parametrize("op", RAW_FUNCTIONAL)
@pytest.mark.parametrize("n", [12, 4, 0], ids=lambda n: f"n{n}")
def test_raw_op_bad_n(op, n):
    with pytest.raises(ValueError, match=rf"zerofwht::{op}: n must be a power of two >= x.shape\[-1\]=8, got n={n}\b"):
        getattr(torch.ops.zerofwht, op)(x8(), n, 8, 1.0)


@pytest.mark.parametrize("op", RAW_FUNCTIONAL)
@pytest.mark.parametrize("out_features", [9, 0], ids=lambda v: f"out_features{v}")
def test_raw_op_bad_out_features(op, out_features):
    with pytest.raises(ValueError, match=rf"out_features must be in \[1, n=8\], got out_features={out_features}\b"):
        getattr(torch.ops.zerofwht, op)(x8(), 8, out_features, 1.0)


@pytest.mark.parametrize("op", RAW_FUNCTIONAL)
def test_raw_op_bad_dtype(op):
    with pytest.raises(TypeError, match=r"x must be a floating tensor"):
        getattr(torch.ops.zerofwht, op)(torch.ones(3, 8, dtype=torch.int32), 8, 8, 1.0)


@pytest.mark.parametrize("op", RAW_FUNCTIONAL)
def test_raw_op_zero_dim(op):
    with pytest.raises(ValueError, match=r"at least 1 dimension"):
        getattr(torch.ops.zerofwht, op)(torch.tensor(1.0), 1, 1, 1.0)


def test_raw_fwht_out_bad_arguments():
    x = x8()
    with pytest.raises(ValueError, match=r"fwht_out: out has shape \[3, 7\], expected \[3, 8\]"):
        torch.ops.zerofwht.fwht_out(x, 8, 8, 1.0, torch.empty(3, 7))
    with pytest.raises(TypeError, match=r"fwht_out: out has dtype Double"):
        torch.ops.zerofwht.fwht_out(x, 8, 8, 1.0, torch.empty(3, 8, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"fwht_out: out has internal overlap"):
        torch.ops.zerofwht.fwht_out(x, 8, 8, 1.0, torch.empty(1, 8).expand(3, 8))
    with pytest.raises(ValueError, match=r"fwht_out: n must be a power of two"):
        torch.ops.zerofwht.fwht_out(x, 6, 6, 1.0, torch.empty(3, 6))


def test_raw_fwht_out_on_another_device_raises():
    # x on cpu, out on meta: must raise like the public fwht(out=...), not silently write nothing.
    out = torch.empty(3, 8, device="meta")
    with pytest.raises(RuntimeError, match=r"device|meta"):
        torch.ops.zerofwht.fwht_out(x8(), 8, 8, 1.0, out)


def test_raw_fwht_inplace_bad_arguments():
    with pytest.raises(ValueError, match=r"fwht_inplace: n must be a power of two >= x.shape\[-1\]=6, got n=6"):
        torch.ops.zerofwht.fwht_inplace(make_input((3, 6)), 1.0)
    with pytest.raises(TypeError, match=r"fwht_inplace: x must be a floating tensor"):
        torch.ops.zerofwht.fwht_inplace(torch.ones(3, 8, dtype=torch.int64), 1.0)
