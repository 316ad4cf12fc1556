"""The compiled zerofwht::fwht_kron op (csrc/cpu/kron_*.cpp, csrc/cuda/kron.cu) against fp64 references.

y = scale * ((H_K kron H_M) pad_n(x))[..., :out_features], n = K * M. The bases are built here:
Paley I (K = q + 1, q prime, q = 3 mod 4), Paley II (K = 2(q + 1), q prime, q = 1 mod 4), a
Kronecker product of those with H_2, and random +-1 matrices (the kernel does not need a
Hadamard matrix, only +-1 entries). The reference is torch.kron(base, scipy.linalg.hadamard(M))
applied densely for small n, and the same product in its factored form H_K . X . H_M (in fp64)
for large n (checked against the dense one on the small sizes).

The CUDA kernel is checked without a GPU: nvcc compiles csrc/cuda/kron.cu for sm_80 and sm_90
(no spills, no stack, no local memory) and tests/kron_cuda_emulate.cu runs its body on the host.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import scipy.linalg
import torch

import zerofwht
from conftest import CPU_ISAS, FLOAT_DTYPES, assert_close_to_reference, dtype_id, make_input

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
op = torch.ops.zerofwht.fwht_kron


# ---- bases ---------------------------------------------------------------------------------------
def _chi(q: int) -> np.ndarray:
    """Quadratic character of Z_q as a q x q matrix Q[i, j] = chi(j - i)."""
    squares = {(k * k) % q for k in range(1, q)}
    chi = np.array([0] + [1 if a in squares else -1 for a in range(1, q)])
    idx = (np.arange(q)[None, :] - np.arange(q)[:, None]) % q
    return chi[idx]


def paley1(q: int) -> np.ndarray:
    """Hadamard matrix of order q + 1 (q prime, q = 3 mod 4): I + S with S the skew Paley core."""
    s = np.zeros((q + 1, q + 1), dtype=np.int64)
    s[0, 1:] = 1
    s[1:, 0] = -1
    s[1:, 1:] = _chi(q)
    return s + np.eye(q + 1, dtype=np.int64)


def paley2(q: int) -> np.ndarray:
    """Hadamard matrix of order 2(q + 1) (q prime, q = 1 mod 4), symmetric conference construction."""
    c = np.zeros((q + 1, q + 1), dtype=np.int64)
    c[0, 1:] = 1
    c[1:, 0] = 1
    c[1:, 1:] = _chi(q)
    blocks = {0: np.array([[1, -1], [-1, -1]]), 1: np.array([[1, 1], [1, -1]]), -1: np.array([[-1, -1], [-1, 1]])}
    return np.block([[blocks[int(v)] for v in row] for row in c])


def random_pm1(k: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    return g.choice(np.array([-1, 1]), size=(k, k))


def base_of(kind: str, k: int) -> torch.Tensor:
    if kind == "had":
        m = {1: np.array([[1]]), 2: scipy.linalg.hadamard(2), 12: paley1(11), 20: paley1(19), 28: paley2(13),
             40: np.kron(scipy.linalg.hadamard(2), paley1(19)), 44: paley1(43)}[k]
        assert (m @ m.T == k * np.eye(k)).all()
    else:
        m = random_pm1(k, seed=k)
    return torch.tensor(m, dtype=torch.float32)


# ---- references ----------------------------------------------------------------------------------
def kron_dense(x: torch.Tensor, base: torch.Tensor, n: int, d_out: int, scale: float) -> torch.Tensor:
    """scale * (torch.kron(base, H_M) @ pad_n(x))[..., :d_out] in fp64, densely."""
    k = base.shape[0]
    full = torch.kron(base.double(), torch.tensor(scipy.linalg.hadamard(n // k), dtype=torch.float64))
    xp = torch.nn.functional.pad(x.double(), (0, n - x.shape[-1]))
    return (xp @ full.T)[..., :d_out] * scale


def kron_factored(x: torch.Tensor, base: torch.Tensor, n: int, d_out: int, scale: float) -> torch.Tensor:
    """The same as H_K . X . H_M per row (fp64), for sizes where the dense matrix is too large."""
    k = base.shape[0]
    m = n // k
    xp = torch.nn.functional.pad(x.double(), (0, n - x.shape[-1]))
    xm = xp.reshape(*x.shape[:-1], k, m)
    z = zerofwht.reference.fwht_butterfly(xm, m, m, 1.0)  # H_M over the last dim, fp64
    y = base.double() @ z
    return y.reshape(*x.shape[:-1], n)[..., :d_out] * scale


def test_factored_reference_is_the_dense_kron():
    for kind, k, m in (("had", 12, 8), ("had", 28, 4), ("rand", 5, 16)):
        base = base_of(kind, k)
        x = make_input((3, k * m - 3), torch.float64, seed=k)
        torch.testing.assert_close(kron_factored(x, base, k * m, k * m - 1, 0.5),
                                   kron_dense(x, base, k * m, k * m - 1, 0.5), rtol=0, atol=1e-12)


# ---- correctness -----------------------------------------------------------------------------------
ISA_PARAMS = [pytest.param(isa, id=isa) for isa in CPU_ISAS]
DTYPE_PARAMS = [pytest.param(dt, id=dtype_id(dt)) for dt in FLOAT_DTYPES]
# (base kind, K, M): narrow sub-rows (M below a vector), the benchmark shapes, long sub-rows
# (M of two L1 pieces and more), K = 1 (the plain transform), odd K.
SHAPES = [("had", 12, 1), ("had", 20, 2), ("rand", 3, 4), ("had", 28, 8), ("had", 12, 64), ("had", 40, 16),
          ("rand", 172, 4), ("had", 12, 256), ("had", 28, 512), ("rand", 172, 64), ("rand", 3, 16384),
          ("had", 1, 1024), ("had", 2, 32), ("rand", 7, 128)]


def _cases(k, m):
    n = k * m
    yield n, n, 1.0
    yield max(0, n - n // 3 - 5), n, 0.125        # d_in < n: implicit zero padding
    yield n, max(1, n // 2 + 3), 1.0              # out_features < n
    yield max(1, m // 2), max(1, n - 7), -0.5     # only the first sub-row holds data


@pytest.mark.parametrize("kind,k,m", SHAPES, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_matches_reference(isa, dtype, kind, k, m):
    zerofwht._C.set_cpu_isa(isa)
    base = base_of(kind, k)
    n = k * m
    rows = max(1, min(5, 40000 // n))
    ref_fn = kron_dense if n <= 2048 else kron_factored
    for d_in, d_out, scale in _cases(k, m):
        x = make_input((rows, d_in), dtype, seed=n + d_in)
        if d_in == 0:
            continue
        y = op(x, base, n, d_out, scale)
        assert_close_to_reference(y, ref_fn(x, base, n, d_out, scale), dtype, n)


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_every_output_written_poisoned_cache(dtype):
    # Outputs of 1 MB or more come from the output cache, which the test suite NaN-fills
    # (ZEROFWHT_CPU_CACHE_POISON=1 in conftest): an element the kernel skips stays NaN.
    base = base_of("rand", 172)
    n, rows = 172 * 64, 48 if dtype in (torch.float32, torch.float64) else 96
    for _ in range(2):  # the second call reuses (and re-poisons) the first one's buffer
        x = make_input((rows, n - 100), dtype, seed=3)
        y = op(x, base, n, n - 1, 1.0)
        assert y.numel() * y.element_size() >= 1 << 20
        assert not bool(y.isnan().any())
        assert_close_to_reference(y, kron_factored(x, base, n, n - 1, 1.0), dtype, n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_row_strides_and_batch_dims(dtype):
    base = base_of("had", 12)
    n = 12 * 64
    wide = make_input((4, 3, n + 40), dtype, seed=5)
    layouts = {
        "rows of a wider buffer": wide[:, 1, 7:7 + n - 9],
        "batch dims": wide[..., : n - 1],
        "transposed batch (copied)": wide.transpose(0, 1)[..., :n],
        "strided last dim (copied)": wide[..., ::2][..., : n // 2],
        "expanded rows": wide[0, 0, :n].expand(5, n),
        "one row, 1-d": wide[2, 2, :n],
        "storage offset": wide.reshape(-1)[3:3 + 2 * n].view(2, n),
        "eight batch dims (copied)": make_input((2, 1, 2, 3, 1, 2, 2, 3, 100), dtype, seed=6).transpose(0, 2),
    }
    for name, x in layouts.items():
        before = x.clone()
        y = op(x, base, n, n - 5, 1.0)
        assert y.shape == (*x.shape[:-1], n - 5), name
        assert_close_to_reference(y, kron_dense(x.contiguous(), base, n, n - 5, 1.0), dtype, n)
        assert torch.equal(x, before), f"{name}: the input was modified"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=dtype_id)
def test_bitwise_same_on_every_isa_and_thread_count(dtype, num_threads):
    for kind, k, m in (("had", 12, 64), ("rand", 172, 8), ("had", 28, 512)):
        base, n = base_of(kind, k), k * m
        x = make_input((9, n - 3), dtype, seed=k)
        outs = []
        for isa in CPU_ISAS:
            zerofwht._C.set_cpu_isa(isa)
            for threads in (1, 2):
                num_threads(threads)
                outs.append(op(x, base, n, n, 0.5))
        for o in outs[1:]:
            assert torch.equal(o, outs[0]), f"K={k} M={m}: results differ between ISAs / thread counts"


def test_k1_is_the_power_of_two_transform_bit_for_bit():
    x = make_input((6, 1000), torch.float32, seed=1)
    for sign in (1.0, -1.0):
        y = op(x, torch.tensor([[sign]]), 1024, 900, 0.25)
        assert torch.equal(y, torch.ops.zerofwht.fwht(x, 1024, 900, 0.25 * sign))


def test_nan_and_inf_stay_in_their_rows():
    base = base_of("had", 20)
    x = make_input((4, 20 * 32), torch.float32, seed=2)
    x[1, 7], x[2, 300] = float("nan"), float("inf")
    y = op(x, base, 640, 640, 1.0)
    assert bool(y[1].isnan().all())
    assert bool((y[2].isinf() | y[2].isnan()).all())
    assert bool(y[[0, 3]].isfinite().all())


@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_narrow_subrows_in_row_blocks(dtype, num_threads):
    # Sub-rows shorter than a vector go a vector's width of rows at a time, rows as lanes: many
    # rows (whole blocks and a partial one, split unevenly over two threads), padding and
    # truncation, every ISA bit for bit (on AVX2, M = 8 fp32 is a full vector: the other path),
    # and a NaN that must stay in its row (its lane).
    for kind, k, m in (("had", 12, 1), ("had", 20, 2), ("rand", 172, 4), ("had", 28, 8)):
        base, n = base_of(kind, k), k * m
        x = make_input((53, n - 3), dtype, seed=k + m)
        x[17, 1] = float("nan")
        ref = kron_dense(x, base, n, n - 5, 0.5)
        outs = []
        for isa in CPU_ISAS:
            zerofwht._C.set_cpu_isa(isa)
            for threads in (1, 2):
                num_threads(threads)
                outs.append(op(x, base, n, n - 5, 0.5))
        assert bool(outs[0][17].isnan().all())
        rest = torch.cat([outs[0][:17], outs[0][18:]])
        assert bool(rest.isfinite().all()), f"K={k} M={m}: the NaN left its row"
        assert_close_to_reference(rest, torch.cat([ref[:17], ref[18:]]), dtype, n)
        for o in outs[1:]:  # bitwise (NaN where NaN)
            torch.testing.assert_close(o, outs[0], rtol=0, atol=0, equal_nan=True,
                                       msg=f"K={k} M={m}: results differ between ISAs / thread counts")


def test_empty_inputs():
    base = base_of("had", 12)
    assert op(torch.empty(0, 768), base, 768, 768, 1.0).shape == (0, 768)
    y = op(torch.empty(3, 0), base, 768, 10, 1.0)
    assert y.shape == (3, 10) and bool((y == 0).all())


def test_errors_name_the_argument():
    x = torch.randn(2, 700)
    base = base_of("had", 12)
    cases = [
        (lambda: op(x, base[:, :11], 768, 768, 1.0), ValueError, r"base must be a square K x K matrix"),
        (lambda: op(x, base.double(), 768, 768, 1.0), TypeError, r"base must be float32"),
        (lambda: op(x, base, 770, 768, 1.0), ValueError, r"n must be K \* 2\^k for the K x K base \(K=12\), got n=770"),
        (lambda: op(x, base, 12 * 48, 10, 1.0), ValueError, r"n must be K \* 2\^k"),
        (lambda: op(x, base, 384, 10, 1.0), ValueError, r"n must be >= x.shape\[-1\]=700, got n=384"),
        (lambda: op(x, base, 768, 769, 1.0), ValueError, r"out_features must be in \[1, n=768\], got out_features=769"),
        (lambda: op(x, base, 768, 0, 1.0), ValueError, r"out_features must be in"),
        (lambda: op(x.int(), base, 768, 768, 1.0), TypeError, r"x must be a floating tensor"),
        (lambda: op(torch.tensor(1.0), base, 768, 768, 1.0), ValueError, r"at least 1 dimension"),
        (lambda: op(x, base * 0.5, 768, 768, 1.0), ValueError, r"base entries must be \+1 or -1, got base\[0, 0\]=0.5"),
        (lambda: op(x, torch.tensor([[2.0]]), 1024, 8, 1.0), ValueError, r"base entries must be \+1 or -1"),
    ]
    for fn, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn()
    b = base.clone()
    b[3, 5] = 0.0
    with pytest.raises(ValueError, match=r"got base\[3, 5\]=0"):
        op(x, b, 768, 768, 1.0)


# ---- the CUDA kernel without a GPU -----------------------------------------------------------------
NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit) to compile csrc/cuda/kron.cu")
FLAGS = ["-O3", "-std=c++17", "-lineinfo", "-diag-suppress=177", "-I" + os.path.join(ROOT, "csrc")]


@needs_nvcc
def test_cuda_kernel_compiles_without_spills(tmp_path):
    res = subprocess.run([NVCC, "-c", *FLAGS, "-gencode", "arch=compute_80,code=sm_80", "-gencode",
                          "arch=compute_90,code=sm_90", "-Xptxas", "-v", os.path.join(ROOT, "csrc/cuda/kron.cu"),
                          "-o", str(tmp_path / "kron.o")], capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "warning" not in out.lower(), out[-3000:]
    entries = re.split(r"Compiling entry function ", out)[1:]
    assert len(entries) == 8, out[-3000:]  # 4 dtypes x sm_80, sm_90
    for e in entries:
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", e)
        assert m and m.groups() == ("0", "0", "0"), e[:400]
        assert "lmem" not in e or re.search(r"\b0 bytes lmem", e), e[:400]


@needs_nvcc
def test_cuda_kernel_body_emulated_on_the_host(tmp_path):
    exe = tmp_path / "kron_cuda_emulate"
    res = subprocess.run([NVCC, *FLAGS, "-DZEROFWHT_CUDA_EMULATE", "-gencode", "arch=compute_90,code=sm_90",
                          os.path.join(ROOT, "tests/kron_cuda_emulate.cu"), os.path.join(ROOT, "csrc/cuda/kron.cu"),
                          "-o", str(exe)], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    run = subprocess.run([str(exe), "600"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and "kron_cuda_emulate: 0 failed of 601" in run.stdout, run.stdout[-3000:]


# ---- on a GPU ------------------------------------------------------------------------------------
HAS_CUDA_KERNEL = (torch.cuda.is_available() and zerofwht._C is not None and zerofwht._C.built_with_cuda())


@pytest.mark.skipif(not HAS_CUDA_KERNEL, reason="needs an NVIDIA GPU and zerofwht._C built with CUDA")
@pytest.mark.parametrize("dtype", DTYPE_PARAMS)
def test_cuda_matches_reference(dtype):
    for kind, k, m in (("had", 12, 64), ("had", 28, 512), ("rand", 172, 64), ("had", 1, 256), ("rand", 5, 2)):
        base, n = base_of(kind, k), k * m
        for d_in, d_out, scale in _cases(k, m):
            if d_in == 0:
                continue
            x = make_input((7, d_in), dtype, seed=d_in)
            y = op(x.cuda(), base.cuda(), n, d_out, scale).cpu()
            ref = (kron_dense if n <= 2048 else kron_factored)(x, base, n, d_out, scale)
            assert_close_to_reference(y, ref, dtype, n)
