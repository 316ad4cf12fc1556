"""The backend tables: which implementation runs a transform (or a weight fill), and why another
one refuses.

One table type (``BackendTable``) of one backend type (``Backend``) serves both the transform
(``TRANSFORM``: ops ``zerofwht::fwht*``) and the fused weight fill of ``zerofwht.init``
(``INIT``: ops ``zerofwht::init_fill*``). Each backend states the devices and dtypes it serves,
the largest transform length it takes, and whether it is present at all (compiled, importable,
a device to run on). ``table.select(x, n, name)`` returns the backend to run, or raises a
``RuntimeError`` that says why the one asked for cannot run the input.

Selection order when no backend is named (``backend=None`` / ``"auto"`` and nothing in the
table's environment variable, ``ZEROFWHT_BACKEND`` / ``ZEROFWHT_INIT_BACKEND``): the first backend
of ``auto_order[device type]`` that accepts the input; ``"torch"`` (pure PyTorch) accepts
everything and comes last.

This module imports the Triton *kernel* modules only (never the launchers or ``ops``), so no
module that selects a backend is imported back from here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch

from ._checks import (FILL_MAX_DIMS, FLOAT_DTYPES, TRITON_MAX_LOG_N,  # noqa: F401  (re-exported)
                      triton_interpreting)

# Filled by zerofwht/__init__.py after trying to import the compiled extension.
EXTENSION = {"loaded": False, "error": "zerofwht._C was not imported", "cuda": False}


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    devices: Union[tuple, Callable[[], tuple]]  # device types (or a function giving them now);
    #                                             empty tuple = every device
    dtypes: tuple = FLOAT_DTYPES
    max_n: Optional[int] = None          # longest transform (None: no length, e.g. a fill)
    present: Callable[[], Optional[str]] = field(default=lambda: None, repr=False)  # None: usable
    # The backend's own complete check (device, capability, dtype, size); replaces the generic
    # device / dtype / max_n / ranks checks when given.
    check: Optional[Callable[[torch.Tensor, Optional[int]], Optional[str]]] = field(default=None, repr=False)
    ranks: Optional[tuple] = None        # (min, max) tensor dimensions accepted; None: any
    # Why the backend, though present, has nothing to run on in this process (the table's
    # "available" column); None: it can run here.
    runs_here: Callable[[], Optional[str]] = field(default=lambda: None, repr=False)

    def device_types(self) -> tuple:
        return self.devices() if callable(self.devices) else self.devices

    def refuse(self, x: torch.Tensor, n: Optional[int] = None) -> Optional[str]:
        """Why this backend cannot run ``x`` (with transform length ``n``); None if it can."""
        missing = self.present()
        if missing:
            return missing
        if self.check is not None:
            return self.check(x, n)
        devices = self.device_types()
        if devices and x.device.type not in devices:
            return f"it runs on {'/'.join(devices)} tensors, got a tensor on {x.device}"
        if x.dtype not in self.dtypes:
            return f"it supports dtypes {_dtype_names(self.dtypes)}, got {x.dtype}"
        if n is not None and self.max_n is not None and n > self.max_n:
            return f"it supports n <= {self.max_n}, got n={n}"
        if self.ranks is not None and not self.ranks[0] <= x.dim() <= self.ranks[1]:
            return f"it takes tensors of {self.ranks[0]} to {self.ranks[1]} dimensions, got {x.dim()}"
        return None

    def record(self) -> dict:
        reason = self.present() or self.runs_here()
        row = {"name": self.name, "description": self.description,
               "devices": list(self.device_types()) or ["any"],
               "dtypes": [str(d).replace("torch.", "") for d in self.dtypes]}
        if self.max_n is not None:
            row["max_n"] = self.max_n
        row.update(available=reason is None, reason=reason)
        return row


def _dtype_names(dtypes) -> str:
    return ", ".join(str(d).replace("torch.", "") for d in dtypes)


class BackendTable:
    """Named backends of one op family, the automatic order per device type, and the selector."""

    def __init__(self, what: str, backends: dict, auto_order: dict, env_var: str,
                 aliases: Optional[dict] = None, verb: str = "run this input"):
        self.what, self.backends, self.auto_order = what, backends, auto_order
        self.env_var, self.aliases, self.verb = env_var, aliases or {}, verb

    def canonical_name(self, name: Optional[str]) -> Optional[str]:
        """Map a user-given backend name (or None / "auto"; None falls back to the environment
        variable) to a key of the table, or None for auto."""
        if name is None:
            name = os.environ.get(self.env_var) or None
            source = f"environment variable {self.env_var}"
        else:
            source = "backend"
        if name is None or name == "auto":
            return None
        if not isinstance(name, str):
            raise TypeError(f"backend must be a string or None, got {type(name).__name__} {name!r}")
        key = self.aliases.get(name.lower(), name.lower())
        if key not in self.backends:
            raise ValueError(f"{source}={name!r} is not a known {self.what}; choose one of "
                             f"{sorted(self.backends)} or 'auto'")
        return key

    def select(self, x: torch.Tensor, n: Optional[int] = None, name: Optional[str] = None,
               memo: Optional[dict] = None) -> Backend:
        """The backend to run ``x`` (length ``n``). ``memo``: a dict remembering the automatic
        choice for CPU tensors by (dtype, n)."""
        key = self.canonical_name(name)
        if key is not None:
            backend = self.backends[key]
            reason = backend.refuse(x, n)
            if reason:
                raise RuntimeError(f"zerofwht {self.what} {key!r} cannot {self.verb}: {reason}")
            return backend
        remember = memo is not None and x.is_cpu
        if remember:
            chosen = memo.get((x.dtype, n))
            if chosen is not None:
                return chosen
        for key in self.auto_order.get(x.device.type, ("torch",)):
            if self.backends[key].refuse(x, n) is None:
                if remember:
                    memo[(x.dtype, n)] = self.backends[key]
                return self.backends[key]
        shape = f"with n={n}" if n is not None else f"of shape {tuple(x.shape)}"
        raise RuntimeError(f"no zerofwht {self.what} accepts a {x.dtype} tensor {shape} on {x.device}: "
                           + "; ".join(f"{k}: {b.refuse(x, n)}" for k, b in self.backends.items()))

    def rows(self) -> list:
        """The table as plain records (for the README, the benchmark and error messages)."""
        return [b.record() for b in self.backends.values()]


# =================================================================================================
# Presence of each backend
# =================================================================================================
def _extension_present() -> Optional[str]:
    if not EXTENSION["loaded"]:
        return f"the compiled extension is not available ({EXTENSION['error']})"
    return None


def _op_has_kernel(op: str, key: str) -> bool:
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(op, key)
    except RuntimeError:  # schema not registered
        return False


_KERNEL_CACHE: dict = {}


def _op_kernel(op: str, key: str) -> Optional[str]:
    """None when op has a kernel for dispatch key ``key`` (CPU / CUDA), else why not. Cached once
    zerofwht._C is imported: registrations do not change then (and torch.compile sees a plain
    constant)."""
    if (op, key) in _KERNEL_CACHE:
        return _KERNEL_CACHE[(op, key)]
    missing = _extension_present()
    if missing:
        return missing
    reason = None
    if not _op_has_kernel(op, key):
        if key == "CUDA" and not EXTENSION["cuda"]:
            reason = ("zerofwht._C was built without CUDA kernels (a CPU build of torch or no CUDA "
                      "toolkit at build time; see the README's support matrix)")
        else:
            reason = (f"zerofwht._C has no {key} kernel for {op.split('::')[1]} (an extension built "
                      f"before it existed: rebuild with pip install --no-build-isolation -e .)")
    _KERNEL_CACHE[(op, key)] = reason
    return reason


def _init_op_kernel(key: str) -> Optional[str]:
    """Presence of zerofwht::init_fill_'s kernel for ``key`` (kept for zerofwht.init)."""
    return _op_kernel("zerofwht::init_fill_", key)


_TRITON_STATE: dict = {}


def _triton_present() -> Optional[str]:
    """None when triton imports (and the kernels with it), else why not."""
    if "error" not in _TRITON_STATE:
        from . import triton_fwht_kernels, triton_init_kernels
        err = triton_fwht_kernels.IMPORT_ERROR or triton_init_kernels.IMPORT_ERROR
        _TRITON_STATE["error"] = None if err is None else f"triton is not importable ({err})"
    return _TRITON_STATE["error"]


def _triton_runs_here() -> Optional[str]:
    """Triton has something to run on: a CUDA device, or the CPU interpreter."""
    if triton_interpreting() or torch.cuda.is_available():
        return None
    return ("triton is installed but cannot run here: no CUDA device is visible "
            "(torch.cuda.is_available() is False); set TRITON_INTERPRET=1 to run its kernels on "
            "CPU tensors in Triton's interpreter (slow; for tests)")


def _triton_devices() -> tuple:
    return ("cuda", "cpu") if triton_interpreting() else ("cuda",)


# =================================================================================================
# The transform
# =================================================================================================
_CUDA_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
_CUDA_MAX_LOG_N: dict = {}


def cuda_max_n(dtype: torch.dtype, device: torch.device) -> int:
    """Longest transform the CUDA kernel takes for ``dtype`` on ``device`` (it depends on the
    device's shared memory per block: 2^27 on A100 / H100 for 2-4 byte types, 2^26 for fp64).
    The one place Python checks the CUDA size limit; the kernel's own plan computes it."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    key = (dtype, index)
    if key not in _CUDA_MAX_LOG_N:
        from . import _C
        smem = torch.cuda.get_device_properties(index).shared_memory_per_block_optin
        _CUDA_MAX_LOG_N[key] = _C.cuda_max_log_n(_CUDA_DTYPE_CODES[dtype], int(smem))
    return 1 << _CUDA_MAX_LOG_N[key]


def _cuda_check(x: torch.Tensor, n: Optional[int]) -> Optional[str]:
    if x.device.type != "cuda":
        return f"it runs on cuda tensors, got a tensor on {x.device}"
    if x.dtype not in FLOAT_DTYPES:
        return f"it supports dtypes {_dtype_names(FLOAT_DTYPES)}, got {x.dtype}"
    limit = cuda_max_n(x.dtype, x.device)
    if n > limit:
        return f"it supports n <= {limit} for {x.dtype} on this device, got n={n}"
    return None


def triton_device_refusal(x: torch.Tensor) -> Optional[str]:
    """Why Triton kernels cannot run on x's device (CUDA; CPU only under TRITON_INTERPRET=1)."""
    if x.device.type != "cuda":
        if x.device.type == "cpu" and triton_interpreting():
            return None  # Triton's CPU interpreter (tests)
        return (f"it runs on CUDA tensors (CPU tensors only under TRITON_INTERPRET=1), got a "
                f"tensor on {x.device}")
    if torch.version.hip is not None:
        return "it is checked on NVIDIA GPUs only (this is a ROCm build of torch)"
    cap = torch.cuda.get_device_capability(x.device)
    if cap < (7, 5):
        return f"Triton needs compute capability >= 7.5, got {cap[0]}.{cap[1]}"
    if x.dtype == torch.bfloat16 and cap < (8, 0):
        return f"bfloat16 needs compute capability >= 8.0, got {cap[0]}.{cap[1]}"
    return None


def _triton_check(x: torch.Tensor, n: Optional[int]) -> Optional[str]:
    reason = triton_device_refusal(x)
    if reason:
        return reason
    if x.dtype not in FLOAT_DTYPES:
        return f"it supports dtypes {_dtype_names(FLOAT_DTYPES)}, got {x.dtype}"
    if n is not None and n > (1 << TRITON_MAX_LOG_N):
        return f"it supports n <= 2^{TRITON_MAX_LOG_N}, got n={n}"
    return None


BACKENDS = {
    "cpp": Backend("cpp", "C++ CPU kernel (AVX-512 / AVX2 / portable, chosen at run time)",
                   ("cpu",), max_n=1 << 30, present=lambda: _op_kernel("zerofwht::fwht", "CPU")),
    "cuda": Backend("cuda", "CUDA kernel (registers + warp shuffles + shared memory; two passes "
                    "for n > 2^15)", ("cuda",), max_n=1 << 27,
                    present=lambda: _op_kernel("zerofwht::fwht", "CUDA"), check=_cuda_check),
    "triton": Backend("triton", "Triton kernel (register butterfly; multi-pass for n > 2^15; CPU "
                      "tensors only under TRITON_INTERPRET=1)", _triton_devices,
                      max_n=1 << TRITON_MAX_LOG_N, present=_triton_present, check=_triton_check,
                      runs_here=_triton_runs_here),
    "torch": Backend("torch", "pure-PyTorch butterfly (reference; any device)", (), max_n=1 << 30),
}
ALIASES = {"reference": "torch", "cpu": "cpp", "c++": "cpp"}
AUTO_ORDER = {"cpu": ("cpp", "torch"), "cuda": ("cuda", "triton", "torch")}
ENV_VAR = "ZEROFWHT_BACKEND"
TRANSFORM = BackendTable("backend", BACKENDS, AUTO_ORDER, ENV_VAR, ALIASES)
# The automatic choice for CPU tensors depends only on (dtype, n) once the extension is imported;
# remembering it saves about 1.3 us of a 9 us call on a small tensor (asking every backend about
# the tensor's device is the slow part). Other devices are asked each time (CUDA's limit depends on
# the device).
_AUTO_CPU: dict = {}


def canonical_name(name: Optional[str]) -> Optional[str]:
    return TRANSFORM.canonical_name(name)


def select(x: torch.Tensor, n: int, name: Optional[str] = None) -> Backend:
    return TRANSFORM.select(x, n, name, _AUTO_CPU)


def table() -> list:
    return TRANSFORM.rows()


# =================================================================================================
# The fused weight fill (zerofwht.init: op zerofwht::init_fill_ and its Triton / torch twins)
# =================================================================================================
INIT_ENV_VAR = "ZEROFWHT_INIT_BACKEND"
INIT_MAX_DIMS = FILL_MAX_DIMS
_RANKS = (2, FILL_MAX_DIMS)

INIT_BACKENDS = {
    "cpp": Backend("cpp", "C++ CPU kernel (zerofwht::init_fill_, parallel over runs)", ("cpu",),
                   present=lambda: _init_op_kernel("CPU"), ranks=_RANKS),
    "cuda": Backend("cuda", "CUDA kernel (zerofwht::init_fill_)", ("cuda",),
                    present=lambda: _init_op_kernel("CUDA"), ranks=_RANKS),
    "triton": Backend("triton", "Triton kernel (zerofwht::init_fill_triton_; CPU tensors only "
                      "under TRITON_INTERPRET=1)", _triton_devices, present=_triton_present,
                      ranks=_RANKS, runs_here=_triton_runs_here),
    "torch": Backend("torch", "pure PyTorch, chunked over rows (any device)", (), ranks=_RANKS),
}
INIT_AUTO_ORDER = {"cpu": ("cpp", "torch"), "cuda": ("cuda", "triton", "torch")}
INIT = BackendTable("init backend", INIT_BACKENDS, INIT_AUTO_ORDER, INIT_ENV_VAR,
                    verb="fill this tensor")


def select_init(w: torch.Tensor, name: Optional[str] = None) -> Backend:
    """The backend that fills ``w``: the one named (``name``, else ZEROFWHT_INIT_BACKEND), else the
    first of INIT_AUTO_ORDER[w.device.type] that accepts it. A named backend that cannot fill ``w``
    raises RuntimeError with the reason."""
    return INIT.select(w, None, name)


def init_table() -> list:
    return INIT.rows()
