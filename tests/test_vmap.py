"""torch.vmap over the transform: a batching rule on every functional op (no per-sample fallback,
no warning), equal to a Python loop over the mapped dimension."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings

import pytest
import torch

import zerofwht
from zerofwht import reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ["cpp", "torch"]


def loop(fn, x, in_dim=0):
    return torch.stack([fn(x.select(in_dim, i)) for i in range(x.shape[in_dim])])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("in_dim", [0, 1, 2])
@pytest.mark.parametrize("kw", [{}, {"n": 16, "out_features": 5, "norm": "ortho"}, {"dim": 0}],
                         ids=["default", "n16-out5-ortho", "dim0"])
def test_vmap_matches_loop(backend, in_dim, kw):
    g = torch.Generator().manual_seed(in_dim)
    x = torch.randn(4, 3, 7, generator=g, dtype=torch.float64)
    fn = lambda t: zerofwht.fwht(t, backend=backend, **kw)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback warning surfaced to Python fails here
        got = torch.vmap(fn, in_dims=in_dim)(x)
    want = loop(fn, x, in_dim)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_nested_vmap_and_hadamard_transform():
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    got = torch.vmap(torch.vmap(zerofwht.hadamard_transform))(x)
    torch.testing.assert_close(got, zerofwht.hadamard_transform(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_backward_is_the_hadamard_matrix(backend):
    # is_grads_batched vmaps the backward (the same op) over the basis vectors: the Jacobian.
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = zerofwht.fwht(x, out_features=8, backend=backend)
    (jac,) = torch.autograd.grad(y, x, torch.eye(8, dtype=torch.float64), is_grads_batched=True)
    torch.testing.assert_close(jac, reference.hadamard_matrix(8, dtype=torch.float64)[:, :5])


def test_vmap_of_op_unbatched_argument():
    # in_dims None for x: the rule passes the op through unbatched.
    x = torch.randn(3, 8)
    y = torch.vmap(lambda s: zerofwht.fwht(x) * s)(torch.arange(2.0))
    torch.testing.assert_close(y, torch.stack([zerofwht.fwht(x) * 0, zerofwht.fwht(x)]))


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_vmap_triton_under_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x = torch.randn(2, 3, 8)
    fn = lambda t: zerofwht.fwht(t, backend="triton", out_features=6)  # noqa: E731
    torch.testing.assert_close(torch.vmap(fn, in_dims=1)(x), loop(fn, x, 1))


def test_no_fallback_warning_in_a_fresh_process():
    # The fallback warning is printed by C++ once per process, so check it in a process of its own.
    code = ("import torch, zerofwht\n"
            "x = torch.randn(4, 3, 8)\n"
            "torch.vmap(zerofwht.fwht)(x)\n"
            "torch.vmap(lambda t: zerofwht.fwht(t, backend='torch'))(x)\n"
            "x = torch.randn(5, requires_grad=True)\n"
            "torch.autograd.grad(zerofwht.fwht(x), x, torch.eye(8), is_grads_batched=True)\n")
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "batching rule" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
