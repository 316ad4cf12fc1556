"""The Triton init kernel under Triton's CPU interpreter (TRITON_INTERPRET=1) on CPU tensors,
against the dense references, bitwise: every rule, dtype, conv form, shards, non-contiguous and
deep (multi-launch) layouts.

triton 3.9 decides interpretation when a kernel is decorated (knobs.runtime.interpret); the
launcher (zerofwht.triton_init._kernel) also checks the variable at launch time and then runs
the interpreted twin of the kernel, so setting the variable for these tests is enough whatever
was imported before. The real GPU compile of every configuration: test_init_aot.py.
"""
from __future__ import annotations

import itertools

import pytest
import torch

pytest.importorskip("triton")

from zerofwht import init, reference  # noqa: E402
from test_init import INITIALIZERS, INIT_IDS, assert_bitwise, poisoned, ref, splits  # noqa: E402


@pytest.fixture(autouse=True)
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    yield


SHAPES = [(1, 1), (1, 7), (7, 1), (5, 3), (3, 5), (8, 8), (33, 17), (40, 1100),
          (4, 2, 3), (4, 2, 3, 3), (6, 3, 3, 3, 3), (3, 6, 1, 5), (8, 4, 2, 2)]
# The kernel only stores bit patterns of 2, 4 or 8 bytes: fp16 runs the same code as bf16.
TRITON_DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def test_triton_backend_selected_and_listed():
    from zerofwht import _backends
    assert _backends.select_init(torch.empty(2, 2), "triton").name == "triton"
    row = [r for r in _backends.init_table() if r["name"] == "triton"][0]
    assert row["available"] and "cpu" in row["devices"]


@pytest.mark.parametrize("dtype", TRITON_DTYPES, ids=["fp32", "fp64", "bf16"])
@pytest.mark.parametrize("name,fn,params", INITIALIZERS, ids=INIT_IDS)
def test_triton_against_reference(name, fn, params, dtype):
    for shape in SHAPES:
        w = poisoned(shape, dtype)
        assert fn(w, **params, backend="triton") is w
        assert_bitwise(w, ref(name, shape, params, dtype), f"triton {name}{params} {shape}")


@pytest.mark.parametrize("name,fn,params", INITIALIZERS, ids=INIT_IDS)
def test_triton_layouts_and_shards(name, fn, params):
    # transposed view, slice of a bigger buffer, channels_last conv
    expected = ref(name, (37, 21), params)
    w = poisoned((21, 37)).t()
    fn(w, **params, backend="triton")
    assert_bitwise(w, expected, "transposed")
    big = poisoned((40, 30))
    fn(big[1:38, 4:25], **params, backend="triton")
    assert_bitwise(big[1:38, 4:25], expected, "slice")
    assert int(torch.isnan(big).sum()) == 40 * 30 - 37 * 21
    w = poisoned((6, 4, 3, 3)).to(memory_format=torch.channels_last)
    fn(w, **params, backend="triton")
    assert_bitwise(w, ref(name, (6, 4, 3, 3), params), "channels_last")
    # shards, including kernel-dim shards of a conv weight
    for full_shape, cuts in [((37, 21), [[1, 20], [7, 8]]), ((6, 4, 3, 3), [[1, 4], [3], [1], [2]])]:
        whole = poisoned(full_shape)
        for block in itertools.product(*[splits(n, c) for n, c in zip(full_shape, cuts)]):
            shard = poisoned([b - a for a, b in block])
            fn(shard, **params, offset=[a for a, _ in block], full_shape=full_shape, backend="triton")
            whole[tuple(slice(a, b) for a, b in block)] = shard
        assert_bitwise(whole, ref(name, full_shape, params), f"shards {full_shape}")


def test_triton_deep_layout_multiple_launches():
    from zerofwht import triton_init
    buf = poisoned((5, 4, 6, 6, 6, 2))
    w = buf[:, :, 1:4, ::2, 2:5, 0]  # 5 unmergeable dims
    launches = triton_init.launches(w, init.KIND_IDI, 1, 0, init.TAP_FLATTEN, [0, 0, 1, 1, 2], [5, 4, 5, 4, 6])
    assert len(launches) > 1
    for name, fn, params in [("idic", init.idic_, {"tau": 1.5}), ("zero", init.zero_init_, {}),
                             ("hadamard", init.hadamard_, {"scale": 2.0})]:
        fn(w, **params, offset=[0, 0, 1, 1, 2], full_shape=[5, 4, 5, 4, 6], backend="triton")
        full = reference.init_reference(name, (5, 4, 5, 4, 6), dtype=torch.float32, **params)
        assert_bitwise(w, full[:, :, 1:4, 1:4, 2:5], f"deep {name}")


def test_triton_noise_and_meta():
    a = init.idi_(poisoned((9, 4)), 1.0, 0.2, torch.Generator().manual_seed(5), backend="triton")
    b = init.idi_(poisoned((9, 4)), 1.0, 0.2, torch.Generator().manual_seed(5), backend="cpp")
    assert torch.equal(a, b)
    with pytest.warns(UserWarning, match="meta"):
        init.zero_init_(torch.empty(3, 3, device="meta"), backend="triton")


def test_triton_layout_matches_cpp_rules():
    # the Python twin of build_layout merges the same dims as the C++ one (spot checks)
    from zerofwht import triton_init
    lay = triton_init.layout([8, 4, 3, 3], [36, 9, 3, 1], [0, 0, 0, 0], [8, 4, 3, 3], init.TAP_FLATTEN)
    assert lay["dims"] == [[8, 36, 1, 0, 0], [36, 1, 0, 1, 0]]
    lay = triton_init.layout([8, 4, 3, 3], [36, 9, 3, 1], [0, 0, 0, 0], [8, 4, 3, 3], init.TAP_CENTRE)
    assert lay["dims"] == [[8, 36, 1, 0, 0], [4, 9, 0, 1, 0], [9, 1, 0, 0, 1]]
    assert lay["tap_centre"] == 4
    lay = triton_init.layout([5, 7], [1, 5], [2, 3], [10, 10], init.TAP_FLATTEN)  # transposed
    assert lay["dims"] == [[7, 5, 0, 1, 0], [5, 1, 1, 0, 0]] and lay["row0"] == 2 and lay["col0"] == 3
