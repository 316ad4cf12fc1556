"""The CPU output cache (csrc/cpu/output_cache.cpp): large outputs reuse the buffers of freed outputs.

The suite runs with ZEROFWHT_CPU_CACHE_POISON=1 (conftest.py): every buffer handed out is NaN-
filled first, so the correctness tests elsewhere also prove every output element is written.
"""
from __future__ import annotations

import gc

import pytest
import torch

import zerofwht
from conftest import assert_close_to_reference, dense_reference, make_input

BIG = (64, 8192)  # 2 MB of fp32: above the 1 MB threshold


@pytest.fixture
def cache_limit():
    before = zerofwht.cpu_cache_stats()["limit_bytes"]
    yield zerofwht.set_cpu_cache_limit
    zerofwht.set_cpu_cache_limit(before)


def test_poison_is_on_in_the_test_suite():
    import os
    assert os.environ.get("ZEROFWHT_CPU_CACHE_POISON") == "1"


def test_freed_output_is_reused_and_results_stay_right(cache_limit):
    cache_limit(256 << 20)
    x = make_input(BIG, torch.float32, seed=1)
    ref = dense_reference(x, 8192)
    y = zerofwht.fwht(x, backend="cpp")
    assert_close_to_reference(y, ref, torch.float32, 8192)
    ptr = y.data_ptr()
    del y
    gc.collect()
    s0 = zerofwht.cpu_cache_stats()
    assert s0["cached_bytes"] >= 2 << 20 and s0["buffers"] >= 1
    y2 = zerofwht.fwht(x, backend="cpp")
    s1 = zerofwht.cpu_cache_stats()
    assert s1["hits"] == s0["hits"] + 1, (s0, s1)
    assert y2.data_ptr() == ptr  # the same buffer, most recently freed first
    assert_close_to_reference(y2, ref, torch.float32, 8192)


@pytest.mark.parametrize("d_in,n,d_out", [(8192, 8192, 8192), (5000, 8192, 3000), (8192, 16384, 16384)])
def test_reused_buffer_with_padding_and_truncation(cache_limit, d_in, n, d_out):
    cache_limit(256 << 20)
    x = make_input((64, d_in), torch.float32, seed=d_in)
    ref = dense_reference(x, n, out_features=d_out)
    for _ in range(3):  # the second and third calls get the buffer of the one before
        y = zerofwht.fwht(x, n, out_features=d_out, backend="cpp")
        assert_close_to_reference(y, ref, torch.float32, n)
        del y


def test_limit_zero_turns_the_cache_off_and_clear_empties_it(cache_limit):
    cache_limit(256 << 20)
    x = make_input(BIG, torch.float32, seed=2)
    del_me = zerofwht.fwht(x, backend="cpp")
    del del_me
    assert zerofwht.cpu_cache_stats()["cached_bytes"] > 0
    zerofwht.cpu_cache_clear()
    assert zerofwht.cpu_cache_stats()["cached_bytes"] == 0
    cache_limit(0)
    y = zerofwht.fwht(x, backend="cpp")
    del y
    assert zerofwht.cpu_cache_stats()["cached_bytes"] == 0
    assert_close_to_reference(zerofwht.fwht(x, backend="cpp"), dense_reference(x, 8192), torch.float32, 8192)


def test_cached_outputs_are_ordinary_tensors():
    x = make_input(BIG, torch.float32, seed=3)
    y = zerofwht.fwht(x, backend="cpp")
    assert y.is_contiguous() and y.data_ptr() % 64 == 0
    y.resize_(128, 8192)  # resizable storage
    y.fill_(1.0)
    assert float(y.sum()) == 128 * 8192
    z = zerofwht.fwht(x, backend="cpp")
    assert z.numpy().shape == BIG and z.share_memory_().is_shared()


@pytest.mark.parametrize("bad", [-1, 1.5, "big", True])
def test_bad_limit(bad):
    with pytest.raises(ValueError, match=r"nbytes must be a non-negative int, got"):
        zerofwht.set_cpu_cache_limit(bad)


def _thp_mode():
    try:
        text = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else None


def _anon_huge_kb(ptr):
    """AnonHugePages of the mapping of this process that holds address ptr (Linux smaps)."""
    lines = open("/proc/self/smaps").read().splitlines()
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo <= ptr < hi
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return None


def test_large_outputs_are_huge_page_aligned(cache_limit):
    # Outputs of 4 MB or more are 2 MB aligned and madvise(MADV_HUGEPAGE)'d (csrc/cpu/output_cache.cpp).
    x = make_input((4, 1 << 20), torch.float32, seed=3)  # 16 MB
    y = zerofwht.fwht(x, backend="cpp")
    assert y.data_ptr() % (2 << 20) == 0
    small = zerofwht.fwht(make_input((1, 1 << 18), torch.float32, seed=4), backend="cpp")  # 1 MB
    assert small.data_ptr() % 64 == 0


@pytest.mark.skipif(_thp_mode() not in ("always", "madvise"),
                    reason="transparent huge pages are off on this kernel (alignment is checked above)")
def test_large_outputs_get_transparent_huge_pages(cache_limit):
    x = make_input((4, 1 << 20), torch.float32, seed=3)
    y = zerofwht.fwht(x, backend="cpp")
    huge = _anon_huge_kb(y.data_ptr())
    assert huge is not None, "no /proc/self/smaps entry holds the output"
    assert huge > 0, "the 16 MB output got no transparent huge page"
