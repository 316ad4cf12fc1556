"""Build of zerofwht._C (torch.utils.cpp_extension, ninja).

* The C++ CPU kernels are always built. They are compiled for the baseline x86-64 (or the host's
  generic target elsewhere); the AVX2 and AVX-512 variants live in their own translation units
  compiled with `#pragma GCC target`, and the one to run is chosen at run time from CPUID. The
  build never uses -march=native, so a wheel built here runs on any x86-64 CPU.
* CUDA sources (csrc/**/*.cu) are built when a CUDA toolkit AND a CUDA build of torch are present,
  never because a GPU is visible. ZEROFWHT_CUDA=0 forces them off, ZEROFWHT_CUDA=1 makes their
  absence an error. TORCH_CUDA_ARCH_LIST and MAX_JOBS are honoured as usual.
* ZEROFWHT_SANITIZE=1 builds the CPU kernels only, at -O1 with AddressSanitizer and
  UndefinedBehaviorSanitizer (scripts/sanitize_check.sh builds it into a build dir of its own;
  never install it: it needs libasan preloaded).

Build with `pip install --no-build-isolation -e .` (torch must be the one of the environment).
"""
import glob
import os
import sys

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:  # pragma: no cover
    sys.exit("zerofwht: torch must be installed before building (pip install torch, then "
             "pip install --no-build-isolation -e .); see README.md")

ROOT = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("ZEROFWHT_DEBUG", "0") == "1"
SANITIZE = os.environ.get("ZEROFWHT_SANITIZE", "0") == "1"


def rel(paths):
    return [os.path.relpath(p, ROOT) for p in sorted(paths)]


cpp_sources = rel(glob.glob(os.path.join(ROOT, "csrc", "**", "*.cpp"), recursive=True))
cuda_sources = rel(glob.glob(os.path.join(ROOT, "csrc", "**", "*.cu"), recursive=True))
# Sources include each other by their path under csrc/ ("cpu/fwht.h", "shared/init_params.h").
csrc_include = [os.path.join(ROOT, "csrc")]

cuda_mode = "0" if SANITIZE else os.environ.get("ZEROFWHT_CUDA", "auto").lower()
cuda_possible = torch.version.cuda is not None and CUDA_HOME is not None
if cuda_mode in ("1", "on", "true") and not cuda_possible:
    sys.exit(f"zerofwht: ZEROFWHT_CUDA=1 but torch.version.cuda={torch.version.cuda} and "
             f"CUDA_HOME={CUDA_HOME}: need a CUDA build of torch and a CUDA toolkit")
with_cuda = cuda_mode not in ("0", "off", "false") and cuda_possible and bool(cuda_sources)

# The kernels' only multiply-add is `partner + v * (+-1)`, exact whether fused or not, so GCC's
# default contraction (-ffp-contract=fast, one FMA instead of a multiply and an add) is kept.
# -fno-wrapv: setuptools passes Python's own CFLAGS first, and they hold -fwrapv (signed overflow
# wraps). With it GCC may no longer fold the kernels' int64 index arithmetic into addressing and
# must keep extra index registers: measured on an AMD EPYC (Zen 4), one thread, fp32, 2^22 elements
# per call, n = 2^8: 0.40-0.46 ns per element with -fwrapv, 0.22-0.23 without. The kernels never
# rely on signed overflow wrapping.
cxx_flags = ["-O0" if DEBUG else "-O1" if SANITIZE else "-O3", "-std=c++20", "-fno-math-errno",
             "-fno-wrapv", "-Wall", "-Wno-unknown-pragmas"]
if DEBUG:
    cxx_flags += ["-g"]
# vptr is left out: torch and pybind11 are built without it, and their classes would be reported.
sanitize_flags = ["-fsanitize=address,undefined", "-fno-sanitize=vptr",
                  "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
if SANITIZE:
    cxx_flags += sanitize_flags + ["-g"]
# at::parallel_for is a header template: with torch's OpenMP backend it only runs in parallel when
# OUR translation units are compiled with OpenMP (without it every "parallel" loop runs on one
# thread, silently).
link_flags = list(sanitize_flags) if SANITIZE else []
if sys.platform.startswith("linux") and torch.backends.openmp.is_available():
    cxx_flags += ["-fopenmp"]
    link_flags += ["-fopenmp"]
define_macros = [("ZEROFWHT_WITH_CUDA", "1" if with_cuda else "0")]

if with_cuda:
    include_dirs = list(csrc_include)
    # torch 2.14's CUDA wheels ship CUDA headers (cusparse.h, ...) under site-packages/nvidia/cu*/include.
    for site in sys.path:
        include_dirs += glob.glob(os.path.join(site, "nvidia", "cu*", "include"))
    ext = CUDAExtension(
        "zerofwht._C", cpp_sources + cuda_sources, define_macros=define_macros,
        include_dirs=include_dirs, extra_link_args=link_flags,
        # No --use_fast_math: it flushes denormals to zero, and the transform must not.
        # 177: "declared but never referenced" for per-shape constants some shapes do not use.
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-std=c++20", "-lineinfo",
                                                      "-diag-suppress=177"]})
else:
    ext = CppExtension("zerofwht._C", cpp_sources, define_macros=define_macros, include_dirs=csrc_include,
                       extra_compile_args={"cxx": cxx_flags}, extra_link_args=link_flags)

print(f"zerofwht: building _C with C++ CPU kernels ({len(cpp_sources)} files"
      + (", ASan + UBSan)" if SANITIZE else ")")
      + (f" and CUDA kernels ({len(cuda_sources)} files, CUDA {torch.version.cuda})" if with_cuda
         else f"; CUDA kernels not built ({'ZEROFWHT_SANITIZE=1' if SANITIZE else 'ZEROFWHT_CUDA=0' if cuda_mode in ('0', 'off', 'false') else 'no CUDA sources found' if not cuda_sources else 'torch is a CPU build' if torch.version.cuda is None else 'no CUDA toolkit'})"),
      flush=True)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)})
