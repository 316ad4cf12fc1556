"""Shared by the GPU tests (tests/gpu/): the skip condition, the size lists (full / quick) and
helpers. The GPU check (scripts/gpu_check.sh) sets ZEROFWHT_GPU_CHECK_QUICK=1 for --quick and
ZEROFWHT_GPU_CHECK_DRY_RUN=1 for --dry-run (then every GPU test is skipped with that reason, even
on a machine with a GPU, so that the dry run exercises only the script's own machinery)."""
from __future__ import annotations

import os

import pytest
import torch

DRY_RUN = os.environ.get("ZEROFWHT_GPU_CHECK_DRY_RUN") == "1"
QUICK = os.environ.get("ZEROFWHT_GPU_CHECK_QUICK") == "1"
# Checking the tests themselves without a GPU: ZEROFWHT_GPU_TESTS_ON_CPU=1 with TRITON_INTERPRET=1
# runs them on CPU tensors (the triton and torch backends; the cuda backend and the torch.cuda
# tests then fail, so select with -k). Never set by the GPU check.
ON_CPU = os.environ.get("ZEROFWHT_GPU_TESTS_ON_CPU") == "1"


def skip_reason() -> str | None:
    if DRY_RUN:
        return "dry run of scripts/gpu_check.sh (ZEROFWHT_GPU_CHECK_DRY_RUN=1): GPU tests not run"
    if ON_CPU:
        return None
    if not torch.cuda.is_available():
        return "needs an NVIDIA GPU: torch.cuda.is_available() is False"
    return None


REASON = skip_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=REASON or "")
DEV = "cpu" if ON_CPU else "cuda"

BACKENDS = ("cuda", "triton", "torch")
# One pass (n <= 2^15) and several passes (2^16 .. 2^26).
ONE_PASS_LOG_N = (0, 1, 3, 5, 8, 10, 12, 15) if QUICK else tuple(range(0, 16))
MULTI_PASS_LOG_N = (16, 21, 26) if QUICK else tuple(range(16, 27))


def rows_for(n: int, budget: int = 1 << 24) -> int:
    """A few rows, fewer for long transforms (about `budget` elements at most, at least one)."""
    return max(1, min(5, budget // n))
