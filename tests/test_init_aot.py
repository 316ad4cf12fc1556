"""Ahead-of-time GPU checks of the init kernels, on a machine without a GPU (docs/design.md),
through the scripts that also run by hand:

* scripts/aot_triton.py: every Triton init kernel configuration compiled for sm_80 and sm_90,
  no spills / local memory;
* scripts/aot_nvcc.sh: csrc/cuda/init_fill.cu and csrc/cuda/fwht.cu compiled with nvcc -c for sm_80
  and sm_90 (-Xptxas -v, no spills / stack / local memory); the init kernel body run for every
  thread of its grid on the host against the C++ CPU kernel (tests/init_cuda_emulate.cu); the
  transform's index arithmetic checked exhaustively, its shared-memory bank conflicts, and its
  kernel bodies emulated on the host against a butterfly, bit for bit (tests/fwht_cuda_emulate.cu);
* scripts/build_cuda_ext.sh: the whole extension built against the CUDA build of torch (cached
  venv outside the clone) and imported, CUDA kernels registered. Minutes when cold, so it runs
  only with ZEROFWHT_TEST_CUDA_EXT=1.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, timeout, env=None):
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout + p.stderr


def nvcc():
    return shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if os.path.exists(p)), None)


def test_aot_triton_all_configs_sm80_sm90():
    pytest.importorskip("triton")
    rc, out = run([sys.executable, "scripts/aot_triton.py", "--quiet"], timeout=900)
    assert rc == 0, out[-6000:]
    assert "failures 0" in out and "spills/local in 0" in out, out[-3000:]


@pytest.mark.skipif(nvcc() is None, reason="nvcc (CUDA toolkit) not found")
def test_aot_nvcc_and_host_emulation(tmp_path):
    rc, out = run(["bash", "scripts/aot_nvcc.sh", "2000"], timeout=600,
                  env={"NVCC": nvcc(), "ZEROFWHT_AOT_DIR": str(tmp_path)})
    assert rc == 0, out[-6000:]
    assert "0 with spills / stack / local memory" in out, out[-3000:]
    assert "init_cuda_emulate: 2000 cases, 0 mismatches" in out, out[-3000:]
    assert "fwht_cuda_emulate: 0 failed checks, 0 mismatches" in out, out[-3000:]
    assert "fwht_cuda" in out and "fwht_rows_kernel" in out and "fwht_cols_kernel" in out, out[-3000:]


@pytest.mark.skipif(os.environ.get("ZEROFWHT_TEST_CUDA_EXT") != "1",
                    reason="slow (builds the whole extension against CUDA torch): set ZEROFWHT_TEST_CUDA_EXT=1")
def test_build_cuda_extension_and_import():
    rc, out = run(["bash", "scripts/build_cuda_ext.sh"], timeout=3000)
    assert rc == 0, out[-6000:]
    assert "has a CUDA kernel: True" in out, out[-3000:]
