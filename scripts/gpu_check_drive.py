"""Helper of scripts/gpu_check.sh: the small jobs that run under its time boxes.

    env      --out F          device, versions and tools as JSON; 'gpu_reason' is empty when a
                              GPU can be used, else why the GPU steps are skipped
    sanitize --tool T [--quick]  a small, fast selection of kernel launches for compute-sanitizer
                              (memcheck / racecheck / synccheck): one-pass and multi-pass lengths,
                              odd row counts, misaligned bases, padded strides, partial d_in /
                              out_features, in place, init fills; fp16 and fp32 (fp64/bf16 in
                              memcheck); each result checked against the C++ CPU kernel
    ncu                       the row-kernel launches whose shared-memory stores ncu counts
    fht --src D --dest D      makes fast_hadamard_transform importable from D/site: unpacks a wheel
                              found in --src, or builds its source tree there (no network, no pip)
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile


def _run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as exc:  # noqa: BLE001
        return f"unavailable ({type(exc).__name__})"


def cmd_env(args):
    info = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        cuda = torch.cuda.is_available()
        info["cuda_available"] = cuda
        if cuda:
            p = torch.cuda.get_device_properties(0)
            major, minor = torch.cuda.get_device_capability(0)
            info.update(device=torch.cuda.get_device_name(0), arch=f"{major}.{minor}",
                        memory_gib=round(p.total_memory / 2 ** 30, 1), sms=p.multi_processor_count,
                        devices=torch.cuda.device_count())
            info["gpu_reason"] = ""
        else:
            info["device"] = f"CPU only ({platform.processor() or platform.machine()})"
            info["gpu_reason"] = ("torch has no CUDA (CPU build)" if torch.version.cuda is None
                                  else "no CUDA device visible (torch.cuda.is_available() is False)")
    except Exception as exc:  # noqa: BLE001
        info["torch"] = f"import failed: {exc}"
        info["gpu_reason"] = "torch does not import"
    try:
        import triton
        info["triton"] = triton.__version__
    except Exception as exc:  # noqa: BLE001
        info["triton"] = f"not importable ({type(exc).__name__})"
    for tool in ("nvcc", "compute-sanitizer", "ncu", "nvidia-smi", "ninja"):
        path = shutil.which(tool)
        info[tool] = path or "not found"
    if shutil.which("nvcc"):
        info["nvcc_version"] = _run(["nvcc", "--version"]).splitlines()[-1:]
    if shutil.which("nvidia-smi"):
        info["nvidia_smi"] = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                   "--format=csv,noheader"])
    with open(args.out, "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info, indent=1))


# ---- launch selection for compute-sanitizer ------------------------------------------------
SAN_LOG_N = [0, 1, 3, 10, 11, 14, 15, 16, 21, 27]


def sanitize_cases(tool: str, quick: bool):
    """(dtype, log_n, rows, d_in, d_out, misalign, pad, in_place) tuples, small enough that the
    slowest tool (racecheck tracks every shared-memory access) finishes in seconds."""
    import torch
    dtypes = [torch.float16, torch.float32]
    if tool == "memcheck" and not quick:
        dtypes += [torch.bfloat16, torch.float64]
    max_log = 27 if tool == "memcheck" else 21
    if quick:
        max_log = min(max_log, 21)
    out = []
    for dt in dtypes:
        for ln in SAN_LOG_N:
            if ln > max_log or (ln == 27 and dt == torch.float64):
                continue
            n = 1 << ln
            rows = 1 if ln >= 21 else 3 if ln >= 14 else 5
            out.append((dt, ln, rows, n, n, 0, 0, False))  # plain
            # racecheck / synccheck are the slow tools: at 2^21 (the column kernel's shared-memory
            # rounds start there for fp32/fp16) only the plain case
            if 1 <= ln <= (21 if tool == "memcheck" else 16):
                # partial d_in / out_features, base one element off 16 bytes, padded row stride
                out.append((dt, ln, rows, max(1, n - n // 3 - 1), max(1, n // 2 + 1), 1, 3, False))
                out.append((dt, ln, rows, n, n, 0, 0, True))  # in place
    return out


def cmd_sanitize(args):
    import torch
    import zerofwht
    from zerofwht import init
    dev = "cuda"
    cases = sanitize_cases(args.tool, args.quick)
    bad = 0
    for dt, ln, rows, d_in, d_out, misalign, pad, in_place in cases:
        n = 1 << ln
        stride = d_in + pad
        g = torch.Generator(device=dev).manual_seed(ln)
        buf = torch.randn(rows * stride + misalign + 8, generator=g, device=dev).to(dt)
        x = buf[misalign:misalign + rows * stride].view(rows, stride)[:, :d_in]
        if in_place:
            want = torch.ops.zerofwht.fwht(x.cpu(), n, n, 1.0)
            zerofwht.fwht_(x, backend="cuda")
            y = x
        else:
            y = zerofwht.fwht(x, n, out_features=d_out, backend="cuda")
            want = torch.ops.zerofwht.fwht(x.cpu(), n, d_out, 1.0)
        torch.cuda.synchronize()
        print(f"case {str(dt)[6:]} n=2^{ln} rows={rows} d_in={d_in} d_out={d_out} misalign={misalign} "
              f"pad={pad} in_place={in_place}", flush=True)
        if dt in (torch.float32, torch.float64) and not torch.equal(y.cpu(), want):  # bitwise there
            bad += 1
            print(f"MISMATCH {dt} n=2^{ln} rows={rows} d_in={d_in} d_out={d_out}")
    # init fills: fp16 and fp32, a 2-d and a conv weight, strided
    for dt in (torch.float16, torch.float32):
        for shape in ((300, 129), (64, 32, 3, 3)):
            w = torch.full(shape, float("nan"), device=dev, dtype=dt)
            init.hadamard_(w, backend="cuda")
            init.idiz_(w.transpose(0, 1) if len(shape) == 2 else w, backend="cuda")
    torch.cuda.synchronize()
    print(f"sanitize[{args.tool}]: {len(cases)} transform launches + 8 init fills, {bad} mismatches vs the CPU kernel")
    sys.exit(1 if bad else 0)


def cmd_ncu(args):
    import torch
    import zerofwht
    # row kernels with the shared-memory exchange (rows of several warps): fp32 2^12, 2^15;
    # fp16 2^13; fp64 2^12. ncu counts shared store instructions, wavefronts and bank conflicts.
    for dt, ln in ((torch.float32, 12), (torch.float32, 15), (torch.float16, 13), (torch.float64, 12)):
        x = torch.randn(64, 1 << ln, device="cuda").to(dt)
        zerofwht.fwht(x, backend="cuda")
    torch.cuda.synchronize()
    print("ncu driver: launched fp32 2^12, fp32 2^15, fp16 2^13, fp64 2^12 (64 rows each)")


def cmd_fht(args):
    src, dest = args.src, args.dest
    site = os.path.join(dest, "site")
    os.makedirs(site, exist_ok=True)
    wheels = sorted(glob.glob(os.path.join(src, "*.whl")))
    if wheels:
        with zipfile.ZipFile(wheels[-1]) as z:
            z.extractall(site)
        print(f"fht: unpacked {wheels[-1]} into {site}")
    elif os.path.exists(os.path.join(src, "setup.py")):
        tree = os.path.join(dest, "src")
        shutil.copytree(src, tree, dirs_exist_ok=True)
        env = dict(os.environ)
        import torch
        major, minor = torch.cuda.get_device_capability(0)
        env.setdefault("TORCH_CUDA_ARCH_LIST", f"{major}.{minor}")
        env.setdefault("MAX_JOBS", str(os.cpu_count() or 4))
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, env=env, check=True)
        site = tree
        os.rmdir(os.path.join(dest, "site"))
        os.symlink(tree, os.path.join(dest, "site"))
        print(f"fht: built the source tree in {tree}")
    else:
        sys.exit(f"fht: {src!r} holds neither a *.whl nor a setup.py")
    sys.path.insert(0, site)
    import fast_hadamard_transform  # noqa: F401  (fails the step when it does not import)
    print("fht: fast_hadamard_transform imports")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("env")
    p.add_argument("--out", required=True)
    p = sub.add_parser("sanitize")
    p.add_argument("--tool", required=True, choices=["memcheck", "racecheck", "synccheck", "initcheck"])
    p.add_argument("--quick", action="store_true")
    sub.add_parser("ncu")
    p = sub.add_parser("fht")
    p.add_argument("--src", required=True)
    p.add_argument("--dest", required=True)
    args = ap.parse_args()
    {"env": cmd_env, "sanitize": cmd_sanitize, "ncu": cmd_ncu, "fht": cmd_fht}[args.cmd](args)


if __name__ == "__main__":
    main()
