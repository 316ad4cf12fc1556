"""scripts/gpu_check.sh without a GPU: its dry run, once, into a temporary folder.

The run includes a deliberately over-long step (ZEROFWHT_GPU_CHECK_INJECT_SLEEP=60 under a 2 s
time box) which must be killed by its box, recorded as such, and not stop the summary. Checked:
the files that come back (at most 8, small), every GPU step skipped with its reason, the GPU tests
collected and skipped with the dry-run reason, the benchmark harness's table from its CPU run, and
the exit status (non-zero: a step timed out). The summary writer's parsing is also checked on its
own: pytest junit files and, when pytest was killed before writing one, its log.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check_summary  # noqa: E402

SLEEP, BOX = 600, 2  # a box that did not work would run into the subprocess timeout
GPU_STEPS = ["build", "sanitize_memcheck", "sanitize_racecheck", "sanitize_synccheck", "ncu", "fht_build"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check_out")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZEROFWHT_GPU", "TRITON_INTERPRET"))}
    env.update(ZEROFWHT_PY=sys.executable, ZEROFWHT_GPU_CHECK_INJECT_SLEEP=str(SLEEP),
               ZEROFWHT_GPU_CHECK_INJECT_LIMIT=str(BOX))
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "--dry-run"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=SLEEP - 60)
    wall = time.monotonic() - t0
    results = json.loads((out / "results.json").read_text())
    return proc, out, results, (out / "summary.md").read_text(), wall


def test_files_that_come_back(dry_run):
    proc, out, _, _, _ = dry_run
    files = sorted(p.name for p in out.iterdir())
    assert {"summary.md", "results.json", "gpu_check.log"} <= set(files), (files, proc.stdout, proc.stderr)
    assert len(files) <= 8 and all((out / f).stat().st_size < 16 << 20 for f in files)
    assert proc.returncode == 1, "a step timed out: the exit status must say so"


def test_gpu_steps_skipped_with_their_reason(dry_run):
    _, _, results, summary, _ = dry_run
    steps = {s["name"]: s for s in results["steps"]}
    assert results["mode"] == "dry run" and "mode: dry run" in summary
    for name in GPU_STEPS:
        assert steps[name]["status"] == "skipped" and "dry run" in steps[name]["reason"], steps[name]
        assert f"| {name} | skipped |" in summary
    assert steps["env"]["status"] == "ok"
    assert results["env"].get("torch"), "the environment probe found no torch"


def test_gpu_tests_collected_and_skipped(dry_run):
    _, _, results, summary, _ = dry_run
    t = results["tests"]["tests_fwht"]
    assert t["skipped"] > 100 and t["passed"] == t["failed"] == t["errors"] == 0
    assert any("dry run of scripts/gpu_check.sh" in r for r in t["skip_reasons"])
    assert results["tests"]["tests_more"]["skipped"] > 10
    assert "all " in summary and "tests skipped" in summary and "GPU tests not run" in summary


def test_overlong_step_killed_by_its_time_box(dry_run):
    _, _, results, summary, _ = dry_run
    s = next(s for s in results["steps"] if s["name"] == "injected_sleep")
    assert s["status"] == "timeout" and s["rc"] == 124, s
    assert BOX - 0.5 <= s["seconds"] < BOX + 5, s
    assert f"killed by its {BOX}s time box" in s["reason"]
    assert "| injected_sleep | timeout |" in summary
    # nothing else failed or timed out
    assert [x["name"] for x in results["steps"] if x["status"] in ("failed", "timeout")] == ["injected_sleep"]


def test_speed_table_from_the_harness(dry_run):
    _, _, results, summary, _ = dry_run
    recs = results["bench"]["records"]
    assert any(r["kind"] == "fwht" and r["backend"] == "cpp" and r["ms"] > 0 for r in recs)
    assert any(r["kind"] == "init" for r in recs) and any(r["kind"] == "linear" for r in recs)
    assert "### Transform: time / device-to-device copy" in summary and "| float32 | 2^8 |" in summary
    assert "not a GPU measurement" in summary


def test_parse_junit_and_killed_pytest_log(tmp_path):
    junit = tmp_path / "j.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="a" name="t1"/>'
        '<testcase classname="a" name="t2"><failure message="boom">x</failure></testcase>'
        '<testcase classname="a" name="t3"><skipped message="no GPU"/></testcase>'
        '<testcase classname="a" name="t4"><skipped message="no GPU"/></testcase>'
        '</testsuite></testsuites>')
    t = gpu_check_summary.parse_junit(str(junit))
    assert (t["passed"], t["failed"], t["skipped"]) == (1, 1, 2)
    assert t["failed_tests"][0].startswith("a::t2: boom") and t["skip_reasons"] == {"no GPU": 2}
    assert gpu_check_summary.parse_junit(str(tmp_path / "missing.xml")) is None
    log = ("FAILED tests/gpu/test_gpu_fwht.py::test_one_pass[cuda-fp16-n2^3] - AssertionError\n"
           "!!!!!!! KeyboardInterrupt !!!!!!!\n"
           "========= 1 failed, 37 passed, 4 skipped in 71.20s (0:01:11) =========\n")
    t = gpu_check_summary.parse_pytest_log(log)
    assert (t["passed"], t["failed"], t["skipped"], t["from_log"]) == (37, 1, 4, True)
    assert t["failed_tests"] == ["tests/gpu/test_gpu_fwht.py::test_one_pass[cuda-fp16-n2^3]"]


def test_ncu_csv_table():
    lines = ['"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size",'
             '"Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"']
    for m, v in (("smsp__sass_inst_executed_op_shared_st.sum", "4096"),
                 ("l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum", "16384"),
                 ("l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum", "0")):
        lines.append(f'"0","1","python3","h","void fwht_rows_kernel<F32, F32, 12>(RowArgs)","1","7","(256, 1, 1)",'
                     f'"(16, 1, 1)","0","9.0","Command line profiler metrics","{m}","","{v}"')
    table = gpu_check_summary.ncu_table(lines)
    assert table[0].startswith("| launch | kernel | st instr | st wavefronts | st conflicts")
    assert table[2] == "| 0 | void fwht_rows_kernel<F32, F32, 12> | 4096 | 16384 | 0 |  |"
