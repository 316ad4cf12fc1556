"""What the transform benchmark measures: one ``Impl`` per implementation (our backends and call
forms, the copy reference, the dense baseline, the public peers), each building a timed ``Case``
for one input tensor. A peer that does not import is skipped with the reason."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .common import Skip
from .timing import Case


# =================================================================================================
# Implementations: each builds a Case for one input tensor.
# =================================================================================================
@dataclass
class Impl:
    key: str            # short, unique: "cpp", "torch", "copy", "dense", "ffht", ...
    label: str          # for tables and legends
    kind: str           # "zerofwht" | "copy" | "baseline" | "peer"
    mode: str           # "oop" (allocates the output) | "out" | "inplace" | "copy"
    build: Callable[[Any, int], Case] = field(repr=False)  # (x, n) -> Case, may raise Skip
    dtypes: Optional[tuple] = None   # None: every dtype
    max_n: Optional[int] = None
    setup: Optional[Callable[[], None]] = field(default=None, repr=False)  # before measuring
    version: Optional[str] = None
    note: str = ""

    def describe(self) -> dict:
        return dict(key=self.key, label=self.label, kind=self.kind, mode=self.mode,
                    dtypes=list(self.dtypes) if self.dtypes else "all", max_n=self.max_n,
                    version=self.version, note=self.note)


def _dist_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return None


def _numpy_buffer(x):
    """An uninitialized numpy array shaped like CPU tensor ``x``, 64-byte aligned (torch's CPU
    allocator), for the numpy peers (FFHT wants 32-byte alignment with AVX)."""
    import torch
    return torch.empty_like(x, memory_format=torch.contiguous_format).numpy()


def copy_impl() -> Impl:
    def build(x, n):
        import torch
        out = torch.empty_like(x)
        return Case(run=lambda: out.copy_(x), result=lambda r: out)
    return Impl("copy", "copy: out.copy_(x)", "copy", "copy", build,
                note="copy into a preallocated tensor: the bandwidth reference")


def dense_impl(dense_max: int) -> Impl:
    def build(x, n):
        import zerofwht
        h = zerofwht.reference.hadamard_matrix(n, dtype=x.dtype, device=x.device)
        return Case(run=lambda: x @ h, result=lambda r: r)
    return Impl("dense", "dense x @ H (naive)", "baseline", "oop", build, max_n=dense_max,
                note="dense matmul with the n x n Hadamard matrix in x's dtype, O(n^2) per row")


def own_impls(device_type: str, backends: list, forms: list, isas: list) -> list:
    """zerofwht backends (and call forms; ISA variants of the C++ CPU kernel)."""
    import torch
    import zerofwht
    table = {b["name"]: b for b in zerofwht.backends()}
    impls = []
    for name in backends:
        info = table[name]
        variants = [(None, "")]
        if name == "cpp" and len(isas) > 1:
            variants = [(isa, f"[{isa}]") for isa in isas]
        dts = tuple(info["dtypes"])
        max_n = info["max_n"]
        for isa, suffix in variants:
            setup = None
            if isa is not None:
                setup = (lambda isa=isa: zerofwht._C.set_cpu_isa(isa))
            for form in forms:
                key = name + suffix + ("" if form == "oop" else f":{form}")
                if form == "oop":
                    def build(x, n, name=name):
                        return Case(run=lambda: zerofwht.fwht(x, backend=name), result=lambda r: r)
                    label = f"zerofwht {name}{suffix}"
                elif form == "out":
                    def build(x, n, name=name):
                        out = torch.empty_like(x)
                        return Case(run=lambda: zerofwht.fwht(x, out=out, backend=name),
                                    result=lambda r: out)
                    label = f"zerofwht {name}{suffix} out="
                else:  # inplace
                    def build(x, n, name=name):
                        buf = torch.empty_like(x)
                        return Case(run=lambda: zerofwht.fwht_(buf, backend=name),
                                    prep=lambda: buf.copy_(x), result=lambda r: buf)
                    label = f"zerofwht {name}{suffix} in place"
                impls.append(Impl(key, label, "zerofwht", form, build, dtypes=dts, max_n=max_n,
                                  setup=setup, version=zerofwht.__version__,
                                  note=info["description"]))
    return impls


# ---- public peers -------------------------------------------------------------------------------
def _peer_ffht(device_type: str, threads: int):
    if device_type != "cpu":
        raise Skip("CPU only")
    import ffht  # noqa: F401  (ImportError -> not installed)
    import numpy as np

    inplace = getattr(ffht, "fht_", None)
    if inplace is not None:  # ffht-unofficial: fht_(buf, nthreads) in place, fht() out of place
        def call(buf):
            return inplace(buf, threads)
        how = "ffht.fht_(buf, nthreads) in place"
    else:  # the original FALCONN FFHT bindings: fht(buf) in place on a 1-D array
        def call(buf):
            for row in buf:
                ffht.fht(row)
        how = "ffht.fht(row) in place, per row"

    def build(x, n):
        xn = x.numpy()
        buf = _numpy_buffer(x)
        return Case(run=lambda: call(buf), prep=lambda: np.copyto(buf, xn), result=lambda r: buf)
    ver = _dist_version("ffht-unofficial") or _dist_version("FFHT") or getattr(ffht, "__version__", None)
    return Impl("ffht", "ffht (in place)", "peer", "inplace", build,
                dtypes=("float32", "float64"), version=ver, note=how)


def _peer_fht_cpu(device_type: str, threads: int):
    if device_type != "cpu":
        raise Skip("CPU only")
    import fht_cpu
    import numpy as np

    def build(x, n):
        xn = x.numpy()
        buf = _numpy_buffer(x)
        return Case(run=lambda: fht_cpu.fht(buf, axis=-1, inplace=True, num_threads=threads),
                    prep=lambda: np.copyto(buf, xn), result=lambda r: buf)
    return Impl("fht_cpu", "fht_cpu (in place)", "peer", "inplace", build,
                dtypes=("float32", "float64"),
                version=_dist_version("fht_cpu") or _dist_version("fht-cpu"),
                note="fht_cpu.fht(buf, inplace=True, num_threads=threads)")


def _peer_fast_hadamard_transform(device_type: str, threads: int):
    if device_type != "cuda":
        raise Skip("CUDA only")
    from fast_hadamard_transform import hadamard_transform

    def build(x, n):
        return Case(run=lambda: hadamard_transform(x, 1.0), result=lambda r: r)
    return Impl("fast_hadamard_transform", "fast_hadamard_transform", "peer", "oop", build,
                dtypes=("float32", "float16", "bfloat16"), max_n=1 << 15,
                version=_dist_version("fast_hadamard_transform")
                or _dist_version("fast-hadamard-transform"),
                note="Dao-AILab fast_hadamard_transform.hadamard_transform(x, scale=1.0)")


def _peer_hadamard_transform(device_type: str, threads: int):
    # PyPI hadamard-transform: pure PyTorch (torch.cat per stage), any device, orthonormal
    # (divides by sqrt(n)); the check undoes the scale outside the timed call.
    from hadamard_transform import hadamard_transform

    def build(x, n):
        return Case(run=lambda: hadamard_transform(x), result=lambda r: r * math.sqrt(n))
    return Impl("hadamard_transform", "hadamard-transform (PyTorch)", "peer", "oop", build,
                version=_dist_version("hadamard-transform") or _dist_version("hadamard_transform"),
                note="hadamard_transform.hadamard_transform(x): pure PyTorch, orthonormal")


# Public peers, by the name the --peers option takes; each installs from PyPI (scripts/setup_env.sh):
# ffht-unofficial, fht-cpu, hadamard-transform; fast-hadamard-transform (CUDA) needs a GPU build.
PEERS = {"ffht": _peer_ffht, "fht_cpu": _peer_fht_cpu, "hadamard_transform": _peer_hadamard_transform,
         "fast_hadamard_transform": _peer_fast_hadamard_transform}
PEER_PACKAGES = {"ffht": "pip install --no-build-isolation ffht-unofficial",
                 "fht_cpu": "pip install fht-cpu", "hadamard_transform": "pip install hadamard-transform",
                 "fast_hadamard_transform": "pip install --no-build-isolation fast-hadamard-transform "
                                            "(a CUDA build of torch and nvcc)"}


def peer_impls(device_type: str, names: list, threads: int) -> tuple:
    """(impls, info): the peers that import and apply to the device, and why the others do not."""
    impls, info = [], {}
    for name in names:
        try:
            impl = PEERS[name](device_type, threads)
        except Skip as e:
            info[name] = dict(available=False, reason=str(e))
        except Exception as e:  # noqa: BLE001  (ImportError, or a broken install)
            reason = f"not importable: {type(e).__name__}: {e}"
            if isinstance(e, ImportError) and name in PEER_PACKAGES:
                reason += f" (install: {PEER_PACKAGES[name]}; make setup does)"
            info[name] = dict(available=False, reason=reason)
        else:
            impls.append(impl)
            info[name] = dict(available=True, version=impl.version, note=impl.note)
    return impls, info
