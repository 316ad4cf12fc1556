"""The backend table: which implementation runs a transform, and why another one refuses.

Each backend states the devices and dtypes it serves, the largest transform length it takes, and
whether it is present at all (compiled, importable). ``select(x, n, name)`` returns the backend to
run, or raises a ``RuntimeError`` that says why the one asked for cannot run the input.

Selection order when no backend is named (``backend=None`` / ``"auto"`` and no
``ZEROFWHT_BACKEND`` in the environment): the first backend of ``AUTO_ORDER[device type]`` that
accepts the input; ``"torch"`` (pure PyTorch) accepts everything and comes last.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# Filled by zerofwht/__init__.py after trying to import the compiled extension.
EXTENSION = {"loaded": False, "error": "zerofwht._C was not imported", "cuda": False}


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    devices: tuple  # device types, e.g. ("cpu",); empty tuple = every device
    dtypes: tuple
    max_n: int
    present: Callable[[], Optional[str]] = field(repr=False)  # None when usable, else the reason
    # The backend's own finer checks (e.g. compute capability), run after present(); None = none.
    check: Optional[Callable[[torch.Tensor, int], Optional[str]]] = field(default=None, repr=False)

    def refuse(self, x: torch.Tensor, n: int) -> Optional[str]:
        """Why this backend cannot transform ``x`` with length ``n`` (None if it can)."""
        missing = self.present()
        if missing:
            return missing
        if self.check is not None:
            return self.check(x, n)
        if self.devices and x.device.type not in self.devices:
            return f"it runs on {'/'.join(self.devices)} tensors, got a tensor on {x.device}"
        if x.dtype not in self.dtypes:
            names = ", ".join(str(d).replace("torch.", "") for d in self.dtypes)
            return f"it supports dtypes {names}, got {x.dtype}"
        if n > self.max_n:
            return f"it supports n <= {self.max_n}, got n={n}"
        return None


def _cpp_present() -> Optional[str]:
    if not EXTENSION["loaded"]:
        return f"the compiled extension is not available ({EXTENSION['error']})"
    return None


def _cuda_present() -> Optional[str]:
    if not EXTENSION["loaded"]:
        return f"the compiled extension is not available ({EXTENSION['error']})"
    if not EXTENSION["cuda"]:
        return ("zerofwht._C was built without CUDA kernels (a CPU build of torch or no CUDA "
                "toolkit at build time; see the README's support matrix)")
    if not _op_has_kernel("zerofwht::fwht", "CUDA"):
        return ("zerofwht._C has no CUDA kernel for fwht (an extension built before it existed: "
                "rebuild with pip install --no-build-isolation -e .)")
    return None


_CUDA_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
_CUDA_MAX_LOG_N: dict = {}


def cuda_max_n(dtype: torch.dtype, device: torch.device) -> int:
    """Longest transform the CUDA kernel takes for ``dtype`` on ``device`` (it depends on the
    device's shared memory per block: 2^27 on A100 / H100 for 2-4 byte types, 2^26 for fp64)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    key = (dtype, index)
    if key not in _CUDA_MAX_LOG_N:
        from . import _C
        smem = torch.cuda.get_device_properties(index).shared_memory_per_block_optin
        _CUDA_MAX_LOG_N[key] = _C.cuda_max_log_n(_CUDA_DTYPE_CODES[dtype], int(smem))
    return 1 << _CUDA_MAX_LOG_N[key]


def _cuda_check(x: torch.Tensor, n: int) -> Optional[str]:
    if x.device.type != "cuda":
        return f"it runs on cuda tensors, got a tensor on {x.device}"
    if x.dtype not in FLOAT_DTYPES:
        return f"it supports dtypes float16, bfloat16, float32, float64, got {x.dtype}"
    limit = cuda_max_n(x.dtype, x.device)
    if n > limit:
        return f"it supports n <= {limit} for {x.dtype} on this device, got n={n}"
    return None


def _op_has_kernel(op: str, key: str) -> bool:
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(op, key)
    except RuntimeError:  # schema not registered
        return False


def _triton_present() -> Optional[str]:
    try:
        from . import triton_fwht
    except Exception as exc:  # noqa: BLE001
        return f"the Triton backend failed to import ({type(exc).__name__}: {exc})"
    if triton_fwht.IMPORT_ERROR is not None:
        return f"triton is not importable ({triton_fwht.IMPORT_ERROR})"
    return None


def _triton_check(x: torch.Tensor, n: int) -> Optional[str]:
    # Device (CUDA; CPU only under TRITON_INTERPRET=1), compute capability, dtype and size.
    from . import triton_fwht
    return triton_fwht.refuse(x, n)


BACKENDS = {
    "cpp": Backend("cpp", "C++ CPU kernel (AVX-512 / AVX2 / portable, chosen at run time)",
                   ("cpu",), FLOAT_DTYPES, 1 << 30, _cpp_present),
    "cuda": Backend("cuda", "CUDA kernel (registers + warp shuffles + shared memory; two passes "
                    "for n > 2^15)", ("cuda",), FLOAT_DTYPES, 1 << 27, _cuda_present, _cuda_check),
    # devices lists CUDA; _triton_check also admits CPU tensors under TRITON_INTERPRET=1 (tests).
    "triton": Backend("triton", "Triton kernel (register butterfly; multi-pass for n > 2^15)",
                      ("cuda",), FLOAT_DTYPES, 1 << 30, _triton_present, _triton_check),
    "torch": Backend("torch", "pure-PyTorch butterfly (reference; any device)", (),
                     FLOAT_DTYPES, 1 << 30, lambda: None),
}
ALIASES = {"reference": "torch", "cpu": "cpp", "c++": "cpp"}
AUTO_ORDER = {"cpu": ("cpp", "torch"), "cuda": ("cuda", "triton", "torch")}
ENV_VAR = "ZEROFWHT_BACKEND"


def canonical_name(name: Optional[str], table: Optional[dict] = None, env_var: str = ENV_VAR,
                   what: str = "backend") -> Optional[str]:
    """Map a user-given backend name (or None / "auto"; None falls back to ``env_var``) to a key
    of ``table`` (default BACKENDS), or None for auto. Shared by the transform and init tables."""
    table = BACKENDS if table is None else table
    if name is None:
        name = os.environ.get(env_var) or None
        source = f"environment variable {env_var}"
    else:
        source = "backend"
    if name is None or name == "auto":
        return None
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string or None, got {type(name).__name__} {name!r}")
    key = ALIASES.get(name.lower(), name.lower())
    if key not in table:
        raise ValueError(f"{source}={name!r} is not a known {what}; choose one of "
                         f"{sorted(table)} or 'auto'")
    return key


# The automatic choice for CPU tensors depends only on (dtype, n) once the extension is imported;
# remembering it saves about 1.3 us of a 9 us call on a small tensor (asking every backend about
# the tensor's device is the slow part). Other devices are asked each time (CUDA's limit depends on
# the device).
_AUTO_CPU: dict = {}


def select(x: torch.Tensor, n: int, name: Optional[str] = None) -> Backend:
    key = canonical_name(name)
    if key is not None:
        backend = BACKENDS[key]
        reason = backend.refuse(x, n)
        if reason:
            raise RuntimeError(f"zerofwht backend {key!r} cannot run this input: {reason}")
        return backend
    on_cpu = x.is_cpu
    if on_cpu:
        chosen = _AUTO_CPU.get((x.dtype, n))
        if chosen is not None:
            return chosen
    for key in AUTO_ORDER.get(x.device.type, ("torch",)):
        if BACKENDS[key].refuse(x, n) is None:
            if on_cpu:
                _AUTO_CPU[(x.dtype, n)] = BACKENDS[key]
            return BACKENDS[key]
    raise RuntimeError(f"no zerofwht backend accepts a {x.dtype} tensor on {x.device} with n={n}: "
                       + "; ".join(f"{k}: {b.refuse(x, n)}" for k, b in BACKENDS.items()))


def table() -> list[dict]:
    """The backend table as plain records (for the README, the benchmark and error messages)."""
    rows = []
    for key, b in BACKENDS.items():
        rows.append({"name": key, "description": b.description,
                     "devices": list(b.devices) or ["any"],
                     "dtypes": [str(d).replace("torch.", "") for d in b.dtypes],
                     "max_n": b.max_n, "available": b.present() is None,
                     "reason": b.present()})
    return rows


# =================================================================================================
# Backends of the fused weight fill (zerofwht.init, op zerofwht::init_fill_ and its Triton / torch
# twins). Same idea as the transform's table: each backend states its devices and dtypes and why
# it refuses; ``select_init(w, name)`` picks one (``backend=`` keyword, else the environment
# variable ZEROFWHT_INIT_BACKEND, else the first of INIT_AUTO_ORDER[device] that accepts w).
# =================================================================================================
INIT_ENV_VAR = "ZEROFWHT_INIT_BACKEND"
INIT_MAX_DIMS = 6


@dataclass(frozen=True)
class InitBackend:
    name: str
    description: str
    devices: Callable[[], tuple]  # device types it serves now; empty tuple = every device
    present: Callable[[], Optional[str]] = field(repr=False)  # None when usable, else the reason

    def refuse(self, w: torch.Tensor) -> Optional[str]:
        """Why this backend cannot fill ``w`` (None if it can)."""
        missing = self.present()
        if missing:
            return missing
        devices = self.devices()
        if devices and w.device.type not in devices:
            return f"it runs on {'/'.join(devices)} tensors, got a tensor on {w.device}"
        if w.dtype not in FLOAT_DTYPES:
            return f"it fills floating tensors (float16, bfloat16, float32, float64), got {w.dtype}"
        if not 2 <= w.dim() <= INIT_MAX_DIMS:
            return f"it fills tensors of 2 to {INIT_MAX_DIMS} dimensions, got {w.dim()}"
        return None


_INIT_KERNEL_CACHE: dict = {}


def _init_op_kernel(key: str) -> Optional[str]:
    """None when zerofwht::init_fill_ has a kernel for dispatch key ``key`` (CPU / CUDA).
    Cached: registrations do not change once zerofwht._C is imported (and torch.compile then
    sees a plain constant)."""
    if key not in _INIT_KERNEL_CACHE and EXTENSION["loaded"]:
        _INIT_KERNEL_CACHE[key] = _init_op_kernel_uncached(key)
    return _INIT_KERNEL_CACHE[key] if key in _INIT_KERNEL_CACHE else _init_op_kernel_uncached(key)


def _init_op_kernel_uncached(key: str) -> Optional[str]:
    if not EXTENSION["loaded"]:
        return f"the compiled extension is not available ({EXTENSION['error']})"
    try:
        has = torch._C._dispatch_has_kernel_for_dispatch_key("zerofwht::init_fill_", key)
    except RuntimeError:  # schema not registered: an extension built before the op existed
        has = False
    if not has:
        if key == "CUDA" and not EXTENSION["cuda"]:
            return "zerofwht._C was built without CUDA kernels (CPU build of torch or no CUDA toolkit)"
        return (f"zerofwht._C has no {key} kernel for init_fill_ (rebuild the extension: "
                f"pip install --no-build-isolation -e .)")
    return None


_TRITON_STATE: dict = {}


def triton_interpreting() -> bool:
    """Whether Triton kernels would run under the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _triton_init_present() -> Optional[str]:
    if "error" not in _TRITON_STATE:
        try:
            from . import triton_init  # noqa: F401  (imports triton, registers the triton_op)
            _TRITON_STATE["error"] = None
        except Exception as exc:  # ImportError, or a triton too old for the kernel
            _TRITON_STATE["error"] = f"triton is not usable ({type(exc).__name__}: {exc})"
    return _TRITON_STATE["error"]


INIT_BACKENDS = {
    "cpp": InitBackend("cpp", "C++ CPU kernel (zerofwht::init_fill_, parallel over runs)",
                       lambda: ("cpu",), lambda: _init_op_kernel("CPU")),
    "cuda": InitBackend("cuda", "CUDA kernel (zerofwht::init_fill_)", lambda: ("cuda",),
                        lambda: _init_op_kernel("CUDA")),
    "triton": InitBackend("triton", "Triton kernel (zerofwht::init_fill_triton_; CPU tensors only "
                          "under TRITON_INTERPRET=1)",
                          lambda: ("cuda", "cpu") if triton_interpreting() else ("cuda",),
                          _triton_init_present),
    "torch": InitBackend("torch", "pure PyTorch, chunked over rows (any device)", lambda: (),
                         lambda: None),
}
INIT_AUTO_ORDER = {"cpu": ("cpp", "torch"), "cuda": ("cuda", "triton", "torch")}


def select_init(w: torch.Tensor, name: Optional[str] = None) -> InitBackend:
    """The backend that fills ``w``: the one named (``name``, else ZEROFWHT_INIT_BACKEND), else the
    first of INIT_AUTO_ORDER[w.device.type] that accepts it. A named backend that cannot fill ``w``
    raises RuntimeError with the reason."""
    key = canonical_name(name, INIT_BACKENDS, INIT_ENV_VAR, "init backend")
    if key is not None:
        reason = INIT_BACKENDS[key].refuse(w)
        if reason:
            raise RuntimeError(f"zerofwht init backend {key!r} cannot fill this tensor: {reason}")
        return INIT_BACKENDS[key]
    for key in INIT_AUTO_ORDER.get(w.device.type, ("torch",)):
        if INIT_BACKENDS[key].refuse(w) is None:
            return INIT_BACKENDS[key]
    raise RuntimeError(f"no zerofwht init backend accepts a {w.dtype} tensor of shape "
                       f"{tuple(w.shape)} on {w.device}: "
                       + "; ".join(f"{k}: {b.refuse(w)}" for k, b in INIT_BACKENDS.items()))


def init_table() -> list[dict]:
    """The init backend table as plain records (name, description, devices, available, reason)."""
    return [{"name": key, "description": b.description, "devices": list(b.devices()) or ["any"],
             "dtypes": [str(d).replace("torch.", "") for d in FLOAT_DTYPES],
             "available": b.present() is None, "reason": b.present()}
            for key, b in INIT_BACKENDS.items()]
