"""zerofwht: fast Walsh-Hadamard transforms as PyTorch custom ops, and ZerO / IDInit initializers.

Public API (see README.md and docs/design.md)::

    zerofwht.fwht(x, n=None, dim=-1, norm=None, *, out_features=None, scale=None, out=None, backend=None)
    zerofwht.fwht_(x, ...)                       # in place
    zerofwht.hadamard_transform(x, scale=1.0)    # fast_hadamard_transform drop-in
    zerofwht.reference.*                         # dense references
    zerofwht.init.*                              # ZerO / Hadamard / identity / IDInit initializers
    zerofwht.nn.HadamardLinear(...)              # s * I* H_N I* x + b in O(N log N), no weight matrix
    zerofwht.gradinit(model, loss_fn, batches)   # GradInit: learned per-tensor init scales
    zerofwht.backends()                          # the backend table, with reasons
    python -m zerofwht.bench                     # benchmark CLI

Package layout (a call goes down these layers; docs/design.md has the picture):

    ops.py                  public transform functions, op registration (fake kernels)
    _checks.py              argument checks of every backend (transform and init fill)
    _backends.py            the backend tables (transform, init fill) and the one selector
    _autograd.py            autograd and vmap rules of every transform op
    triton_fwht.py          Triton transform: launcher + triton_op ops (kernels: triton_fwht_kernels.py)
    triton_init.py          Triton init fill: launcher + op (kernel: triton_init_kernels.py)
    _C (csrc/)              C++ CPU and CUDA kernels and their op schemas
    reference.py            dense fp64 references; the pure-PyTorch backend's butterfly
    init, nn, gradinit      initializers, HadamardLinear, GradInit
    bench/                  python -m zerofwht.bench; bench/timing.py is the one timing harness
"""
from __future__ import annotations

from . import _backends, reference

__version__ = "0.1.0"

try:  # the compiled kernels; the pure-PyTorch backend works without them
    from . import _C  # noqa: F401  (imported for its TORCH_LIBRARY registrations)
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    _C = None
    _backends.EXTENSION.update(loaded=False, error=f"import failed: {exc}")
else:
    _backends.EXTENSION.update(loaded=True, error=None, cuda=bool(_C.built_with_cuda()))

from . import ops  # noqa: E402  (after _C: registers fake / autograd for the C++ ops)
from .ops import DimensionError, fwht, fwht_, hadamard_transform  # noqa: E402

if _C is not None:
    ops.register_compiled_ops()

# ---- initializers (zerofwht.init); registers its ops' fake kernels on import ----------------------
from . import init  # noqa: E402

# ---- modules and GradInit ------------------------------------------------------------------------
from . import nn  # noqa: E402
from .gradinit import gradinit  # noqa: E402


def backends() -> list[dict]:
    """The backend table: name, devices, dtypes, max n, and why a backend is unavailable here
    (not compiled or not importable; for Triton also: no CUDA device, unless TRITON_INTERPRET=1)."""
    return _backends.table()


def cpu_isa() -> str:
    """The instruction set the C++ CPU kernel runs with ("avx512", "avx2" or "generic")."""
    if _C is None:
        raise RuntimeError(f"zerofwht._C is not available: {_backends.EXTENSION['error']}")
    return _C.cpu_isa()


__all__ = ["fwht", "fwht_", "hadamard_transform", "reference", "backends", "cpu_isa",
           "DimensionError", "__version__"]
__all__ += ["init", "init_backends", "nn", "gradinit"]


def cpu_cache_stats() -> dict:
    """The CPU transform's output cache: ``cached_bytes``, ``limit_bytes``, ``buffers``, ``hits``,
    ``misses``. Outputs of at least 1 MB come from buffers of freed outputs when one of the same
    size is kept (no page faults on fresh memory); the limit is ``ZEROFWHT_CPU_CACHE_MB``
    (default 1024) or :func:`set_cpu_cache_limit`."""
    if _C is None:
        raise RuntimeError(f"zerofwht._C is not available: {_backends.EXTENSION['error']}")
    return dict(_C.cpu_cache_stats())


def cpu_cache_clear() -> None:
    """Return every cached CPU output buffer to the system (like ``torch.cuda.empty_cache``)."""
    if _C is not None:
        _C.cpu_cache_clear()


def set_cpu_cache_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` of freed CPU outputs for reuse (0 turns the cache off)."""
    if _C is None:
        raise RuntimeError(f"zerofwht._C is not available: {_backends.EXTENSION['error']}")
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
        raise ValueError(f"nbytes must be a non-negative int, got {nbytes!r}")
    _C.cpu_cache_set_limit(nbytes)


__all__ += ["cpu_cache_stats", "cpu_cache_clear", "set_cpu_cache_limit"]


def init_backends() -> list[dict]:
    """The backend table of the initializers' fused fill (zerofwht.init), with reasons."""
    return _backends.init_table()
