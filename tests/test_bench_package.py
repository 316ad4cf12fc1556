"""The benchmark package (zerofwht.bench): peers measured beside ours or skipped with a reason,
the shared timing harness, the materialization section's table and plot."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from zerofwht.bench import fwht as bench_fwht
from zerofwht.bench import impls, materialize, timing


@pytest.mark.parametrize("name", ["ffht", "fht_cpu", "hadamard_transform"])
def test_absent_peer_is_skipped_with_how_to_install(monkeypatch, name):
    module = {"fht_cpu": "fht_cpu", "ffht": "ffht", "hadamard_transform": "hadamard_transform"}[name]
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    found, info = impls.peer_impls("cpu", [name], 1)
    assert found == [] and not info[name]["available"]
    assert "not importable" in info[name]["reason"] and impls.PEER_PACKAGES[name] in info[name]["reason"]


@pytest.mark.parametrize("name", ["ffht", "fht_cpu", "hadamard_transform"])
def test_installed_peer_is_checked_against_the_reference(name):
    found, info = impls.peer_impls("cpu", [name], 1)
    if not found:
        pytest.skip(f"{name} is not installed here: {info[name]['reason']}")
    impl = found[0]
    x = bench_fwht.make_input(256, 1 << 12, "float32", "cpu")
    case = impl.build(x, 256)
    ret, seconds = timing.first_call(case, torch.device("cpu"))
    assert seconds > 0
    assert bench_fwht.Checker(x).error(case.result(ret)) < 1e-5


def test_timing_helpers():
    calls = []
    assert timing.median_call_s(lambda: calls.append(1), reps=5, warmup=2) >= 0
    assert len(calls) == 7
    medians, reps = timing.time_alternating({"a": lambda: None, "b": lambda: None}, None,
                                            budget_s=0.001, min_reps=3, max_reps=4)
    assert set(medians) == {"a", "b"} and 3 <= reps <= 4
    order = []
    runs = timing.interleaved_rounds(["x", "y"], 2, lambda v: order.append(v) or len(order))
    assert order == ["x", "y", "x", "y"] and runs == {"x": [1, 3], "y": [2, 4]}
    st = timing.summarize([4.0, 1.0, 3.0, 2.0])
    assert st["median_s"] == 2.5 and st["min_s"] == 1.0 and st["reps"] == 4
    f = lambda: 7  # noqa: E731
    assert timing.synced(f, torch.device("cpu")) is f
    ticks = iter(range(1000))  # a clock that advances by 1 per reading: every call takes 1 "second"
    medians, reps = timing.time_alternating({"a": lambda: None}, None, budget_s=0.0, min_reps=2,
                                            max_reps=2, clock=lambda: float(next(ticks)))
    assert medians == {"a": 1.0} and reps == 2


def test_kron_section_measures_renders_and_plots(tmp_path):
    from zerofwht.bench import kron
    cfg = dict(quick=True, total=1 << 14, device="cpu", seed=0, budget=0.001, min_reps=2, max_reps=2)
    records = kron.kron_worker(cfg, 1)["records"]
    assert [(r["n"], r["method"]) for r in records] == [(n, m) for n in kron.QUICK_SIZES for m in kron.METHODS]
    assert all(r["ns_per_element"] > 0 and r["K"] * r["M"] == r["n"] for r in records)
    text = kron.kron_render(records, {}, "long")
    assert text.count("pad/f") == 1 and "12*64" in text and "12*256" in text
    path = kron.kron_plot(records, {"date": "2026-12-06"}, str(tmp_path / "k.png"))
    assert path and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_kron_methods_check_the_fused_op_against_the_two_pass_recipe(monkeypatch):
    from zerofwht.bench import kron
    import zerofwht
    real = zerofwht.fwht
    monkeypatch.setattr(zerofwht, "fwht", lambda x, n=None, **kw: real(x, n=n, **kw) * (1.01 if n == 768 else 1))
    with pytest.raises(AssertionError):
        kron.kron_methods(768, 4)


def _mat_records():
    recs = []
    for shape, dtype in [((64, 32), "float32"), ((16, 8), "bfloat16"), ((8, 8), "float32")]:
        for scheme in ("hadamard", "zero"):
            recs.append(dict(section="materialization", date="2026-12-06", device="cpu",
                             device_name="cpu model", threads=2, torch="x", shape=list(shape),
                             dtype=dtype, scheme=scheme, backend="cpp", seconds=1e-3, gbps=1.0,
                             fill_gbps=1.2, ratio_to_fill=0.8, dense_seconds=None,
                             speedup_vs_dense=None, dense_note="n/a"))
    return recs


def test_materialization_table_header_once_and_panels_in_table_order():
    recs = _mat_records()
    text = materialize.materialization_render(recs, {"date": "2026-12-06"})
    lines = text.splitlines()
    assert sum("materialization" in ln for ln in lines) == 1
    assert sum(ln.split()[:2] == ["shape", "dtype"] for ln in lines) == 1
    table_order = list(dict.fromkeys(ln.split()[0] + " " + ln.split()[1] for ln in lines
                                     if ln.strip() and ln.split()[0][0].isdigit()))
    titles = [t for t, _ in materialize.plot_panels(recs)]
    assert titles == ["64x32 float32, 2 threads", "16x8 bfloat16, 2 threads", "8x8 float32, 2 threads"]
    assert [t.split(",")[0] for t in titles] == table_order


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_materialization_plot_writes_a_png(tmp_path):
    path = materialize.materialization_plot(_mat_records(), {"date": "2026-12-06"}, str(tmp_path / "m.png"))
    assert path and open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert tmp_path.joinpath("m.png").stat().st_size > 10_000  # three panels drawn
