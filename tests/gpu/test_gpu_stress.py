"""GPU-only hazards the host emulation cannot show: two host threads launching on two streams
(the kernels' shared-memory attribute is per kernel, not per launch), CUDA graph capture and
replay (multi-pass workspace allocated inside the capture), and tensors of more than 2^31
elements (64-bit offsets). Skipped with the reason without a GPU or in the dry run."""
from __future__ import annotations

import threading

import pytest
import torch

import zerofwht
from _gpu_common import DEV, QUICK, needs_gpu
from conftest import assert_close_to_reference, butterfly_reference, dense_reference

pytestmark = needs_gpu


def _randn(shape, dtype=torch.float32, seed=0):
    g = torch.Generator(device=DEV).manual_seed(seed)
    return torch.randn(shape, generator=g, device=DEV, dtype=dtype)


def test_two_threads_two_streams_large_and_small_tiles():
    # n = 2^27 (fp32) runs the column kernel with a 128 KB tile, n = 2^21 with a smaller one: if a
    # launch lowered the kernel's shared-memory limit, the other thread's large launch would fail.
    xs = {27: _randn((1, 1 << 27), seed=1), 21: _randn((8, 1 << 21), seed=2)}
    want = {k: zerofwht.fwht(x, backend="cuda") for k, x in xs.items()}
    torch.cuda.synchronize()
    errors, start = [], threading.Barrier(2)
    reps = 5 if QUICK else 20

    def worker(k):
        try:
            s = torch.cuda.Stream()
            with torch.cuda.stream(s):
                start.wait()
                for _ in range(reps):
                    y = zerofwht.fwht(xs[k], backend="cuda")
                s.synchronize()
                if not torch.equal(y, want[k]):
                    errors.append(f"n=2^{k}: result differs from the single-thread run")
        except Exception as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(f"n=2^{k}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in xs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("shape,dtype", [((8, 1000), torch.float16), ((4, 1 << 20), torch.float32)], ids=str)
def test_cuda_graph_capture_and_replay(backend, shape, dtype):
    n = 1 << (shape[-1] - 1).bit_length()
    x = _randn(shape, dtype, seed=3)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm up outside the capture (compiles, allocator pools)
        zerofwht.fwht(x, backend=backend)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        y = zerofwht.fwht(x, norm="ortho", backend=backend)
    for seed in (4, 5):
        x.copy_(_randn(shape, dtype, seed=seed))
        y.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        ref = dense_reference(x, n, scale=n ** -0.5) if n <= 1 << 15 else butterfly_reference(x, n, scale=n ** -0.5)
        assert_close_to_reference(y, ref, dtype, n)


@pytest.mark.skipif(QUICK, reason="--quick: the 2^31-element tensors (17 GB, about 10 s) are left to the full run")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("rows,log_n", [((1 << 16) + 3, 15), (33, 26)], ids=["one_pass", "multi_pass"])
def test_more_than_2_31_elements(backend, rows, log_n):
    n = 1 << log_n
    assert rows * n > 1 << 31
    x = _randn((rows, n), seed=6)
    y = zerofwht.fwht(x, backend=backend)
    for r in (0, rows // 2, rows - 2, rows - 1):  # rows past element 2^31 are the ones at risk
        want = torch.ops.zerofwht.fwht(x[r:r + 1].cpu(), n, n, 1.0)
        got = y[r:r + 1].cpu()
        if backend == "cuda":  # same stage order, no FMA: bitwise equal to the CPU kernel
            assert torch.equal(got, want), f"row {r}: {(got != want).sum()} elements differ"
        else:
            assert_close_to_reference(got, want.double(), torch.float32, n)
    del x, y
    torch.cuda.empty_cache()
