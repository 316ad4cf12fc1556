"""Shared helpers of the zerofwht test suite.

* ``make_input``: seeded random inputs (never zeros), generated in fp64 and rounded to the dtype,
  so the fp64 reference sees exactly the values the kernel sees.
* ``dense_reference``: the fp64 dense reference (``zerofwht.reference.fwht_dense``), extended to
  large ``n`` by the exact Kronecker identity ``H_{m*L} = H_m (x) H_L`` (two ``fwht_dense`` calls).
* ``TOLERANCE`` / ``assert_close_to_reference``: the per-dtype tolerance table, relative to the
  largest magnitude of the reference.
* ``poison``: fill an output with NaN before a kernel writes it, so unwritten elements show.
* ``impl`` fixture: every implementation (``cpp`` once per supported CPU instruction set, and
  ``torch``); it selects the ISA and restores ``"auto"`` afterwards.
"""
from __future__ import annotations

import math
import os

import pytest
import torch

# Every output buffer the CPU output cache hands out is NaN-filled first (before zerofwht
# allocates anything), so a reused buffer cannot hide an element a kernel failed to write.
os.environ.setdefault("ZEROFWHT_CPU_CACHE_POISON", "1")

import zerofwht  # noqa: E402
from zerofwht import reference  # noqa: E402

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
DTYPE_IDS = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64"}

CPU_ISAS = tuple(zerofwht._C.supported_cpu_isas().split(","))
# Implementations: "cpp-<isa>" for each instruction set this CPU runs, and the pure-PyTorch one.
IMPLS = tuple(f"cpp-{isa}" for isa in CPU_ISAS) + ("torch",)


def dtype_id(dtype: torch.dtype) -> str:
    return DTYPE_IDS[dtype]


# ----------------------------------------------------------------------------------------------
# Tolerances: max |got - ref| <= rtol * max |ref| (ref in fp64 from the same rounded input).
# Half types accumulate in fp32 and round once on store: about one rounding of the output.
# ----------------------------------------------------------------------------------------------
def tolerance(dtype: torch.dtype, n: int) -> float:
    stages = max(1, int(math.log2(max(n, 1))))
    return {
        torch.float16: 2e-3,
        torch.bfloat16: 1.6e-2,
        torch.float32: 1e-5 * stages,
        torch.float64: 1e-12,
    }[dtype]


def assert_close_to_reference(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, n: int):
    """``got`` (any dtype) against an fp64 reference: same shape, dtype ``dtype``, no NaN, and
    max abs error <= tolerance(dtype, n) * max |ref|."""
    assert got.dtype == dtype, f"dtype {got.dtype}, expected {dtype}"
    assert tuple(got.shape) == tuple(ref.shape), f"shape {tuple(got.shape)}, expected {tuple(ref.shape)}"
    if ref.numel() == 0:
        return
    scale = ref.abs().max().item()
    assert scale > 0, "reference is all zeros: the test input is degenerate"
    atol = tolerance(dtype, n) * scale
    torch.testing.assert_close(got.to(torch.float64), ref, rtol=0.0, atol=atol, equal_nan=False)


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def make_input(shape, dtype=torch.float32, seed=0) -> torch.Tensor:
    """Standard normal values from a seeded generator, rounded to ``dtype`` (never all zeros)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=g, dtype=torch.float64).to(dtype)
    assert x.numel() == 0 or bool((x != 0).any())
    return x


def poison(t: torch.Tensor) -> torch.Tensor:
    """Fill ``t`` with NaN in place (so that an element the kernel never writes stays NaN)."""
    with torch.no_grad():
        t.fill_(float("nan"))
    return t


# ----------------------------------------------------------------------------------------------
# fp64 references
# ----------------------------------------------------------------------------------------------
DENSE_LEAF = 1 << 10  # largest n given to fwht_dense directly (it builds the n x n matrix)


def _dense_last(x64: torch.Tensor, n: int) -> torch.Tensor:
    """(H_n @ pad_n(x))[..., :n] over the last dim of an fp64 tensor, densely.

    n <= DENSE_LEAF: ``reference.fwht_dense``. Larger n: pad explicitly, view the row as an
    (m, L) matrix X with L = DENSE_LEAF; since H_n[(i,j),(k,l)] = H_m[i,k] * H_L[j,l]
    (Sylvester order), H_n x = vec(H_m X H_L): fwht_dense over the last dim, then over dim -2.
    """
    if n <= DENSE_LEAF:
        return reference.fwht_dense(x64, n)
    d_in = x64.shape[-1]
    xp = torch.nn.functional.pad(x64, (0, n - d_in))
    m = n // DENSE_LEAF
    z = reference.fwht_dense(xp.reshape(*x64.shape[:-1], m, DENSE_LEAF), DENSE_LEAF, dim=-1)
    y = reference.fwht_dense(z, m, dim=-2)
    return y.reshape(*x64.shape[:-1], n)


def dense_reference(x: torch.Tensor, n: int, dim: int = -1, out_features=None, scale: float = 1.0):
    """fp64 dense reference of ``fwht(x, n, dim, out_features=..., scale=...)``: computed on the
    fp64 version of ``x`` (exactly the values the kernel reads)."""
    out_features = n if out_features is None else out_features
    x64 = x.detach().to(torch.float64).movedim(dim, -1)
    y = _dense_last(x64, n)[..., :out_features] * scale
    return y.movedim(-1, dim)


def butterfly_reference(x: torch.Tensor, n: int, out_features=None, scale: float = 1.0):
    """fp64 O(n log n) reference over the last dim (for the largest n, where dense is too slow)."""
    out_features = n if out_features is None else out_features
    return reference.fwht_butterfly(x.detach().to(torch.float64), n, out_features, scale)


def hadamard_column(n: int, p: int) -> torch.Tensor:
    """Column p of H_n as fp64 (+-1)."""
    k = torch.arange(n)
    bits = torch.zeros(n, dtype=torch.int64)
    v = k & p
    while bool((v != 0).any()):
        bits += v & 1
        v = v >> 1
    return 1.0 - 2.0 * (bits % 2).to(torch.float64)


# ----------------------------------------------------------------------------------------------
# Implementation selection
# ----------------------------------------------------------------------------------------------
def set_impl(impl: str) -> str:
    """Select the implementation ``impl`` ("cpp-<isa>" or "torch"); return the backend name."""
    if impl.startswith("cpp-"):
        isa = impl[len("cpp-"):]
        zerofwht._C.set_cpu_isa(isa)
        assert zerofwht._C.cpu_isa() == isa
        return "cpp"
    assert impl == "torch"
    return "torch"


@pytest.fixture(autouse=True)
def _restore_cpu_isa():
    """Every test leaves the CPU kernel variant on "auto" whatever it selected."""
    yield
    zerofwht._C.set_cpu_isa("auto")


@pytest.fixture(params=IMPLS)
def impl(request):
    """Backend name to pass as ``backend=``, with the CPU ISA already selected for "cpp-<isa>"."""
    yield set_impl(request.param)
    zerofwht._C.set_cpu_isa("auto")


@pytest.fixture(params=["cpp", "torch"])
def backend(request):
    """The two backends available on CPU (the cpp one with the automatically chosen ISA)."""
    return request.param


@pytest.fixture
def num_threads():
    """Lets a test change torch.set_num_threads; restores the original count afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)
