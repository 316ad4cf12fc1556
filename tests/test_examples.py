"""Smoke runs of the example experiments (examples/*.py --quick): each exits 0, prints its table
and writes its PNG and Markdown report into --out. The numbers of a quick run mean nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _run(name: str, out: Path, needs_sklearn: bool) -> str:
    if needs_sklearn:
        pytest.importorskip("sklearn", reason="the digits examples need scikit-learn (load_digits)")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=str(ROOT))
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    png, md = out / f"{name}.png", out / f"{name}.md"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert md.is_file() and md.read_text().strip() in proc.stdout
    return proc.stdout


def test_rank_constraint_quick(tmp_path):
    out = _run("rank_constraint", tmp_path, needs_sklearn=True)
    assert "| N_h" in out
    # the claims hold even in the 2-epoch smoke run
    assert "bounded by 64: yes" in out and "exceeds 64: yes" in out
    assert "full rank at step 0: yes" in out


def test_reproducibility_quick(tmp_path):
    out = _run("reproducibility", tmp_path, needs_sklearn=True)
    for label in ("ZerO", "IDInit", "zero W + random b", "partial identity", "Kaiming"):
        assert label in out
    assert "Does ZerO have the lowest std" in out


def test_speed_in_model_quick(tmp_path):
    out = _run("speed_in_model", tmp_path, needs_sklearn=False)
    assert "| width" in out and "| 1024" in out


def test_gradinit_digits_quick(tmp_path):
    out = _run("gradinit_digits", tmp_path, needs_sklearn=True)
    assert "kaiming x4 + GradInit" in out and "zero + GradInit" in out


def test_rerun_leaves_tracked_tree_clean():
    """A plain rerun writes outside the tracked tree: the default --out is ignored by git, so the
    snapshot in examples/out/ (dated header, measured numbers) only changes when asked for."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: nothing is tracked")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = ("import sys; sys.argv = ['x']; import _common as C; a = C.parse_args('t'); "
            "print(a.out)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=str(EXAMPLES))
    assert proc.returncode == 0, proc.stderr
    out = Path(proc.stdout.strip().splitlines()[-1])
    assert out.is_dir() and EXAMPLES / "out" not in [out, *out.parents]
    probe = out / f"probe-{os.getpid()}.md"
    probe.write_text("probe\n")
    try:
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", str(out)],
                                capture_output=True, text=True, check=True).stdout
        assert status == "", f"{out} is not ignored by git:\n{status}"
    finally:
        probe.unlink()
