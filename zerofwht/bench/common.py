"""Constants and small helpers shared by the benchmark modules."""
from __future__ import annotations

import sys


SCHEMA = "zerofwht-bench/1"
DTYPE_NAMES = ("float32", "float16", "bfloat16", "float64")
DTYPE_ALIASES = {"fp32": "float32", "f32": "float32", "float": "float32", "single": "float32",
                 "fp16": "float16", "f16": "float16", "half": "float16",
                 "bf16": "bfloat16", "fp64": "float64", "f64": "float64", "double": "float64"}
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
# Relative Frobenius error allowed against the fp64 reference. Half types store their output in
# their own type (rounding ~2^-11 / 2^-8 per element); a broken kernel is off by O(1).
TOLERANCE = {"float64": 1e-12, "float32": 2e-5, "float16": 3e-3, "bfloat16": 2e-2}
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_TOTAL = {"cpu": 1 << 22, "cuda": 1 << 26}
QUICK_KS = (4, 8, 12, 16)
OWN_ORDER = ("cuda", "triton", "cpp", "torch")


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


class Skip(Exception):
    """This implementation does not apply to this input (dtype, size, device)."""
