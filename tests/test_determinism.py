"""Bitwise reproducibility: the stages are applied in the same order everywhere, so every CPU
instruction set, every thread count and the pure-PyTorch backend give identical bits."""
from __future__ import annotations

import pytest
import torch

import zerofwht

from conftest import CPU_ISAS, FLOAT_DTYPES, dtype_id, make_input

# (rows, d_in, n, out_features)
CASES = [
    pytest.param(7, 1, 1, 1, id="rows7-n1"),
    pytest.param(5, 3, 4, 4, id="rows5-din3-n4"),
    pytest.param(6, 64, 64, 64, id="rows6-n64"),
    pytest.param(3, 1000, 1024, 333, id="rows3-din1000-n1024-dout333"),
    pytest.param(4096, 16, 16, 16, id="rows4096-n16"),
    pytest.param(1, 1 << 13, 1 << 13, 1 << 13, id="row-n8192"),
    pytest.param(1, 9000, 1 << 14, (1 << 14) - 1, id="row-din9000-n16384-dout16383"),
    pytest.param(2, 1 << 16, 1 << 16, 1 << 16, id="rows2-n65536"),
    pytest.param(1, 1 << 18, 1 << 18, 5000, id="row-n262144-dout5000"),
    pytest.param(2, 1 << 17, 1 << 17, 1 << 17, id="rows2-n131072"),  # 64 KB pieces (fp32)
    pytest.param(1, 70000, 1 << 17, 100001, id="row-din70000-n131072-dout100001"),
]
DTYPES = [pytest.param(dt, id=dtype_id(dt)) for dt in FLOAT_DTYPES]


@pytest.mark.parametrize("rows,d_in,n,d_out", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_across_isas_and_torch_backend(dtype, rows, d_in, n, d_out):
    x = make_input((rows, d_in), dtype, seed=n + d_in)
    results = {}
    for isa in CPU_ISAS:
        zerofwht._C.set_cpu_isa(isa)
        results[f"cpp-{isa}"] = zerofwht.fwht(x, n, out_features=d_out, norm="ortho", backend="cpp")
    zerofwht._C.set_cpu_isa("auto")
    results["torch"] = zerofwht.fwht(x, n, out_features=d_out, norm="ortho", backend="torch")
    first_name, first = next(iter(results.items()))
    assert not first.isnan().any()
    for name, y in results.items():
        assert torch.equal(y, first), (f"{name} differs from {first_name}: max abs diff "
                                       f"{(y.double() - first.double()).abs().max().item()}")


THREAD_CASES = [
    pytest.param(1, 1 << 20, 1 << 20, 1 << 20, id="row-n1048576"),
    pytest.param(1, (1 << 20) - 7, 1 << 20, 12345, id="row-din1048569-n1048576-dout12345"),
    pytest.param(1, 1 << 13, 1 << 13, 1 << 13, id="row-n8192"),
    pytest.param(3, 1 << 15, 1 << 15, 1 << 15, id="rows3-n32768"),
    # two-sweep rows, whole rows per thread (per-thread work rows when d_out < n)
    pytest.param(4, (1 << 19) - 5, 1 << 19, 300000, id="rows4-din524283-n524288-dout300000"),
    pytest.param(2, 1 << 19, 1 << 19, 1 << 19, id="rows2-n524288"),
    pytest.param(3, 1 << 19, 1 << 19, 1 << 19, id="rows3-n524288-split"),
    pytest.param(20000, 32, 32, 32, id="rows20000-n32"),
    pytest.param(999, 100, 128, 77, id="rows999-din100-n128-dout77"),
]


@pytest.mark.parametrize("isa", CPU_ISAS)
@pytest.mark.parametrize("rows,d_in,n,d_out", THREAD_CASES)
@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"),
                                   pytest.param(torch.float64, id="fp64"),
                                   pytest.param(torch.bfloat16, id="bf16")])
def test_bitwise_identical_for_one_and_two_threads(num_threads, dtype, rows, d_in, n, d_out, isa):
    zerofwht._C.set_cpu_isa(isa)
    x = make_input((rows, d_in), dtype, seed=rows + d_in)
    results = []
    for threads in (1, 2):
        num_threads(threads)
        assert torch.get_num_threads() == threads
        results.append(zerofwht.fwht(x, n, out_features=d_out, scale=0.75, backend="cpp"))
    assert not results[0].isnan().any()
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("form", ["fwht_", "out="])
@pytest.mark.parametrize("rows,n", [pytest.param(1, 1 << 20, id="row-n1048576"),
                                    pytest.param(1, 1 << 13, id="row-n8192"),
                                    pytest.param(512, 64, id="rows512-n64")])
def test_inplace_and_out_match_functional_for_one_and_two_threads(num_threads, rows, n, form):
    x = make_input((rows, n), torch.float32, seed=n)
    num_threads(1)
    expected = zerofwht.fwht(x, backend="cpp")
    for threads in (1, 2):
        num_threads(threads)
        if form == "fwht_":
            y = x.clone()
            zerofwht.fwht_(y, backend="cpp")
        else:
            y = torch.full_like(x, float("nan"))
            zerofwht.fwht(x, out=y, backend="cpp")
        assert torch.equal(y, expected), f"{form} with {threads} thread(s)"


@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"),
                                   pytest.param(torch.bfloat16, id="bf16"),
                                   pytest.param(torch.float16, id="fp16")])
@pytest.mark.parametrize("n,d_out", [pytest.param(1 << 18, 1 << 18, id="n2^18"),
                                     pytest.param(1 << 19, (1 << 19) - 9, id="n2^19-dout-9")])
def test_overlapped_rows_on_one_thread_equal_two_threads(num_threads, dtype, n, d_out):
    # One thread, streamed output, rows of at least L2: each row's second sweep runs between the
    # next row's first-sweep blocks (two work rows); two threads keep one row after the other. An
    # odd row count leaves the last row's second sweep on its own. Rows are counted from the L3
    # this machine reports so that input and output fill it (then one thread streams).
    tuning = zerofwht._C.cpu_tuning()
    esz = torch.tensor([], dtype=dtype).element_size()
    l3 = min(tuning["l3_bytes"] or (32 << 20), 64 << 20)
    rows = (-(-l3 // (esz * (n + d_out)))) | 1
    plan = zerofwht._C.cpu_plan(n, rows, d_out=d_out, dtype=str(dtype).split(".")[-1], threads=1)
    if 0 < tuning["l3_bytes"] <= 64 << 20 and tuning["stream_override"] == -1 and n * 4 >= tuning["l2_bytes"]:
        assert plan["overlap_rows"], plan  # the path meant here
    x = make_input((rows, n), dtype, seed=n + rows)
    num_threads(1)
    one = zerofwht.fwht(x, out_features=d_out, norm="ortho", backend="cpp")
    num_threads(2)
    two = zerofwht.fwht(x, out_features=d_out, norm="ortho", backend="cpp")
    assert not one.isnan().any()
    assert torch.equal(one, two)
