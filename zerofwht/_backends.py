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

    def refuse(self, x: torch.Tensor, n: int) -> Optional[str]:
        """Why this backend cannot transform ``x`` with length ``n`` (None if it can)."""
        missing = self.present()
        if missing:
            return missing
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
        return ("zerofwht._C was built without CUDA kernels (no CUDA kernel is implemented yet in "
                "this version, see the README support matrix)")
    return None


def _triton_present() -> Optional[str]:
    return "the Triton FWHT backend is not implemented yet in this version (see the README)"


BACKENDS = {
    "cpp": Backend("cpp", "C++ CPU kernel (AVX-512 / AVX2 / portable, chosen at run time)",
                   ("cpu",), FLOAT_DTYPES, 1 << 30, _cpp_present),
    "cuda": Backend("cuda", "CUDA kernel", ("cuda",), FLOAT_DTYPES, 1 << 26, _cuda_present),
    "triton": Backend("triton", "Triton kernel", ("cuda",),
                      (torch.float16, torch.bfloat16, torch.float32), 1 << 24, _triton_present),
    "torch": Backend("torch", "pure-PyTorch butterfly (reference; any device)", (),
                     FLOAT_DTYPES, 1 << 30, lambda: None),
}
ALIASES = {"reference": "torch", "cpu": "cpp", "c++": "cpp"}
AUTO_ORDER = {"cpu": ("cpp", "torch"), "cuda": ("cuda", "triton", "torch")}
ENV_VAR = "ZEROFWHT_BACKEND"


def canonical_name(name: Optional[str]) -> Optional[str]:
    """Map a user-given backend name (or None / "auto") to a key of BACKENDS, or None for auto."""
    if name is None:
        name = os.environ.get(ENV_VAR) or None
        source = f"environment variable {ENV_VAR}"
    else:
        source = "backend"
    if name is None or name == "auto":
        return None
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string or None, got {type(name).__name__} {name!r}")
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BACKENDS:
        raise ValueError(f"{source}={name!r} is not a known backend; choose one of "
                         f"{sorted(BACKENDS)} or 'auto'")
    return key


def select(x: torch.Tensor, n: int, name: Optional[str] = None) -> Backend:
    key = canonical_name(name)
    if key is not None:
        backend = BACKENDS[key]
        reason = backend.refuse(x, n)
        if reason:
            raise RuntimeError(f"zerofwht backend {key!r} cannot run this input: {reason}")
        return backend
    for key in AUTO_ORDER.get(x.device.type, ("torch",)):
        if BACKENDS[key].refuse(x, n) is None:
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
