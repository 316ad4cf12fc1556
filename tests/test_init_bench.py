"""Smoke test of the materialization benchmark (zerofwht.bench_init) at small sizes."""
from __future__ import annotations

import pytest

from zerofwht.bench import materialize as bench_init


def test_run_materialization_small(tmp_path):
    pytest.importorskip("scipy")
    out = tmp_path / "m.json"
    recs = bench_init.run_materialization(dict(shapes=["256x128", "100x300"], dtypes=["fp32", "bf16"],
                                               repeats=2, warmup=1, device="cpu", json=str(out)))
    assert len(recs) == 2 * 2 * len(bench_init.SCHEMES)
    for r in recs:
        assert r["gbps"] > 0 and r["fill_gbps"] > 0 and r["ratio_to_fill"] > 0
        assert r["backend"] in ("cpp", "torch")
        if r["scheme"] in ("hadamard", "zero", "partial_identity"):
            assert r["speedup_vs_dense"] is not None and r["speedup_vs_dense"] > 0
        else:
            assert r["dense_note"]
    assert out.exists()
    assert "x fill" in bench_init.format_table(recs)


def test_dense_authors_matches_ours():
    import torch
    from zerofwht import init
    for shape in [(5, 3), (3, 5), (64, 16), (8, 8)]:
        for scheme, fn in [("zero", init.zero_init_), ("hadamard", init.hadamard_),
                           ("partial_identity", init.partial_identity_)]:
            a, b = torch.empty(shape), torch.empty(shape)
            bench_init.dense_authors(scheme, a)
            fn(b)
            assert torch.allclose(a, b, rtol=1e-6, atol=1e-7), (scheme, shape)


def test_main_cli(capsys):
    assert bench_init.main(["--shapes", "64x32", "--dtypes", "fp32", "--schemes", "idi", "--repeats", "1",
                            "--no-dense", "--device", "cpu"]) == 0
    assert "materialization on cpu" in capsys.readouterr().out
