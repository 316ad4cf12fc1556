"""Facts about the machine and the run for the benchmark's JSON: CPU, caches, GPU, git commit,
and the load other processes put on the machine while a worker ran."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from typing import Optional


def cpu_isa() -> Optional[str]:
    try:
        import zerofwht
        return zerofwht.cpu_isa()
    except Exception:  # noqa: BLE001
        return None


def machine_info(device: str) -> dict:
    import torch
    info = dict(python=sys.version.split()[0], platform=platform.platform(), cpus=os.cpu_count())
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if "cpu" not in info:
        info["cpu"] = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            if "cache" in line.lower() and ":" in line:
                a, b = line.split(":", 1)
                info[a.strip()] = b.strip()
    except Exception:  # noqa: BLE001
        pass
    try:
        info["torch_parallel"] = torch.__config__.parallel_info().strip().splitlines()[:8]
    except Exception:  # noqa: BLE001
        pass
    if device.startswith("cuda"):
        d = torch.device(device)
        p = torch.cuda.get_device_properties(d)
        info.update(gpu=p.name, gpu_capability=f"{p.major}.{p.minor}",
                    gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def _machine_busy_s() -> Optional[float]:
    """CPU seconds the whole machine has been busy since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
        ticks = [int(v) for v in parts[1:]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except Exception:  # noqa: BLE001
        return None


class OtherLoad:
    """Average number of cores that OTHER processes kept busy while a worker ran: machine busy time
    minus this process's and its children's CPU time, over the wall time."""

    def __enter__(self):
        self.busy0, self.own0, self.t0 = _machine_busy_s(), os.times(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        busy1, own1 = _machine_busy_s(), os.times()
        wall = time.perf_counter() - self.t0
        self.cores = None
        if self.busy0 is not None and busy1 is not None and wall > 0:
            own = sum(own1[:4]) - sum(self.own0[:4])
            self.cores = max(0.0, (busy1 - self.busy0 - own) / wall)
        return False


def git_info() -> dict:
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return {}
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return dict(git_commit=rev.stdout.strip(), git_dirty=bool(dirty))
    except Exception:  # noqa: BLE001
        return {}
