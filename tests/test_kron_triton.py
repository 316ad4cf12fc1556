"""The Triton K * 2^k backend (zerofwht.triton_kron) without a GPU: both plans (fused, two-pass)
under TRITON_INTERPRET=1 on CPU tensors against a dense fp64 torch.kron reference (NaN-poisoned
outputs, partial last program, row strides, padding / truncation, every dtype), the registered op
through zerofwht.fwht(backend="triton") with gradcheck, and an ahead-of-time compile for sm_80 /
sm_90 of the heaviest configurations (all of them: python scripts/aot_triton_kron.py)."""
from __future__ import annotations

import os
import sys

import pytest
import torch

pytest.importorskip("triton")

import zerofwht  # noqa: E402
from zerofwht import bases, triton_kron as tk  # noqa: E402

from conftest import assert_close_to_reference, dtype_id, make_input  # noqa: E402
from test_kron import dense  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    yield


def test_plans():
    assert tk.plan(12, 256, torch.float32)["kind"] == "fused"      # n = 3072
    assert tk.plan(12, 64, torch.float32)["kind"] == "fused"       # n = 768
    assert tk.plan(28, 512, torch.float32)["kind"] == "two_pass"   # n = 14336 (tile > 2^13)
    assert tk.plan(172, 64, torch.float32)["kind"] == "two_pass"   # n = 11008 (K > 64)
    for k in bases.BUILTIN_K:
        for log_p in range(tk.MAX_LOG_P + 1):
            m = tk.plan(k, 1 << log_p, torch.float32)
            if m["kind"] == "fused":
                assert m["KP"] >= k and m["R"] * m["P"] >= 16 and m["KP"] * m["R"] * m["P"] <= 1 << 13
    assert len(tk.kernel_configs()) == len({str(c) for c in tk.kernel_configs()})


SMALL_CASES = [(12, 4, 45, 48), (20, 1, 20, 13), (60, 16, 900, 960), (172, 2, 300, 344), (1, 64, 50, 64)]
CASES = [pytest.param(dt, *c, id=f"{dtype_id(dt)}-K{c[0]}-p{c[1]}")
         for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64) for c in SMALL_CASES]
# one large two-pass case (n = 14336), fp32 only: the interpreter is slow
CASES.append(pytest.param(torch.float32, 28, 512, 14336, 14000, id="fp32-K28-p512"))


@pytest.mark.parametrize("dtype,k,p,d_in,d_out", CASES)
def test_launch_against_reference(dtype, k, p, d_in, d_out):
    hk = bases.hadamard_base(k)
    base = make_input((7, d_in + 3), dtype, seed=k)
    x = base[:, :d_in]  # row stride d_in + 3
    n = k * p
    y = tk.fwht_kron_triton_launch(x, hk, n, d_out, 0.5)
    assert_close_to_reference(y, dense(x, hk, n, d_out, scale=0.5), dtype, n)


def test_through_fwht_with_autograd():
    hk = bases.hadamard_base(12)
    x = make_input((3, 40), torch.float64).requires_grad_()
    f = lambda t: zerofwht.fwht(t, n=48, out_features=30, norm="ortho", backend="triton")  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    y = zerofwht.fwht(x.detach(), base=hk, backend="triton")
    assert_close_to_reference(y, dense(x.detach(), hk, 48), torch.float64, 48)
    big = make_input((2, 100), torch.float32)
    with pytest.raises(RuntimeError, match=r"backend 'triton' cannot run.*n / K <= 2\^14"):
        zerofwht.fwht(big, n=12 * 2 ** 15, backend="triton")


def test_aot_compile_subset_sm80_sm90(monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import aot_triton_kron as aot
    finally:
        sys.path.pop(0)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cfgs = tk.kernel_configs()
    # the largest fused tiles (fp32 KP = 16, fp64 KP = 64) and a K-stage writing fp16
    picked = []
    for i, c in enumerate(cfgs):
        ce = c["constexprs"]
        if (c["kernel"] == "fused" and c["src"] == torch.float32 and ce["KP"] == 16 and ce["P"] == 512) or \
           (c["kernel"] == "fused" and c["src"] == torch.float64 and ce["KP"] == 64 and ce["P"] == 64) or \
           (c["kernel"] == "kstage" and c["dst"] == torch.float16 and ce["P"] == 64):
            picked.append(i)
    assert len(picked) == 3
    results = aot.run(archs=(80, 90), variants=("aligned",), indices=set(picked), jobs=1)
    assert len(results) == 2 * len(picked)
    for r in results:
        assert not aot.base_aot.problems(r, strict=True), (r["name"], r)
        assert r["regs"] <= 255
