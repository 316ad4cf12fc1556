"""Benchmark: the AugSkip ResNet-50's fixed Hadamard shortcut transforms on CPU.

Forward + backward (gradient with respect to the input) of the fixed normalized Hadamard transform
over channels at the ResNet-50 shortcut shapes (ImageNet: 256@56x56, 512@28x28, 1024@14x14,
2048@7x7; batch 16, fp32), three ways:

* ``dense``: the ZerO authors' module: ``matmul(x.permute(0, 2, 3, 1), H / sqrt(C)).permute(0, 3,
  1, 2)`` with a fixed ``C x C`` matrix (O(C^2) per pixel);
* ``HadamardLinear``: ``zerofwht.nn.HadamardLinear(C, C, bias=False, dim=1)`` (O(C log C); on
  contiguous NCHW input its channel rows are strided by H*W and gathered by a transposing copy);
* ``ChannelHadamard``: what ``zerofwht.models`` uses: the same transform, for NCHW input done as two
  transforms over contiguous rows (see ``zerofwht.models.ChannelHadamard``).

each on contiguous NCHW input and on channels-last input; then one training step (forward,
cross-entropy, backward, SGD) of the whole AugSkip ResNet-50 with the model's transforms against the
same model with the authors' dense products in their place (stem and shortcuts).

Variants are timed interleaved (one call of each in turn, repeated) and medians reported, so that
load from other processes hits all of them alike.

    python scripts/bench_augskip.py [--threads 1] [--batch 16] [--reps 5] [--net-batch 2]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import zerofwht  # noqa: E402
from zerofwht.models import ChannelHadamard, augskip_resnet50  # noqa: E402
from zerofwht.nn import HadamardLinear  # noqa: E402
from zerofwht.reference import hadamard_matrix  # noqa: E402

SHAPES = ((256, 56), (512, 28), (1024, 14), (2048, 7))


class DenseChannelHadamard(nn.Module):
    """The authors' form: zero-pad the channels to N, multiply every pixel by the fixed N x N
    normalized Hadamard matrix, keep ``out`` channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.cin, self.cout = in_channels, out_channels
        n = 1 << (max(in_channels, out_channels) - 1).bit_length()
        self.register_buffer("h", hadamard_matrix(n, dtype=torch.float32) / math.sqrt(n))

    def forward(self, x):
        if self.cin < self.h.shape[0]:
            x = F.pad(x, (0, 0, 0, 0, 0, self.h.shape[0] - self.cin))
        y = torch.matmul(x.permute(0, 2, 3, 1), self.h).permute(0, 3, 1, 2)
        return y if self.cout == self.h.shape[0] else y[:, :self.cout]


def interleaved(fns: dict, reps: int) -> dict:
    """Median seconds of each callable, called in turn ``reps`` times (after one warm-up each).
    The order rotates from one round to the next, so that no variant always runs right after the
    same other one (whose freed memory and evicted caches it would inherit)."""
    for f in fns.values():
        f()
    keys = list(fns)
    times = {k: [] for k in keys}
    for r in range(reps):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_shapes(batch: int, reps: int) -> list[str]:
    rows = ["| shape (C@HxW) | layout | dense (ms) | HadamardLinear (ms) | ChannelHadamard (ms) "
            "| dense / HadamardLinear | dense / ChannelHadamard |", "|---|---|---|---|---|---|---|"]
    for c, s in SHAPES:
        g0 = torch.Generator().manual_seed(c)
        x0 = torch.randn(batch, c, s, s, generator=g0)
        g = torch.randn(batch, c, s, s, generator=g0)
        mods = {"dense": DenseChannelHadamard(c, c), "hl": HadamardLinear(c, c, bias=False, dim=1),
                "ch": ChannelHadamard(c, c)}
        for layout in (torch.contiguous_format, torch.channels_last):
            x = x0.contiguous(memory_format=layout).requires_grad_(True)
            gl = g.contiguous(memory_format=layout)
            ref = mods["dense"](x)
            for k in ("hl", "ch"):  # same numbers as the dense product (fp32 rounding)
                err = (mods[k](x) - ref).abs().max().item()
                assert err < 1e-5 * ref.abs().max().item(), (k, c, err)

            def fb(m):
                return lambda: torch.autograd.grad(m(x), x, gl)
            t = interleaved({k: fb(m) for k, m in mods.items()}, reps)
            name = "NCHW" if layout == torch.contiguous_format else "channels_last"
            rows.append(f"| {c}@{s}x{s} | {name} | {t['dense'] * 1e3:.1f} | {t['hl'] * 1e3:.1f} | "
                        f"{t['ch'] * 1e3:.1f} | {t['dense'] / t['hl']:.1f}x | "
                        f"{t['dense'] / t['ch']:.1f}x |")
            print(rows[-1], flush=True)
    return rows


def densified(model: nn.Module) -> nn.Module:
    """The model with every ChannelHadamard replaced by the authors' dense product."""
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, ChannelHadamard):
                setattr(mod, child_name, DenseChannelHadamard(child.in_features, child.out_features))
    return model


def bench_network(batch: int, reps: int, size: int) -> list[str]:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    target = torch.randint(0, 1000, (batch,))
    rows = ["| network step (ResNet-50, batch {}, {}x{}) | layout | dense (ms) | ChannelHadamard (ms) "
            "| dense / ChannelHadamard |".format(batch, size, size), "|---|---|---|---|---|"]
    for layout in (torch.contiguous_format, torch.channels_last):
        fns = {}
        for kind in ("dense", "ch"):
            # kaiming: every layer active, so the step does the work a trained network's would
            m = augskip_resnet50(init="kaiming")
            if kind == "dense":
                densified(m)
            m = m.to(memory_format=layout)
            opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
            xl = x.contiguous(memory_format=layout)

            def step(m=m, opt=opt, xl=xl):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(m(xl), target).backward()
                opt.step()
            fns[kind] = step
        t = interleaved(fns, reps)
        name = "NCHW" if layout == torch.contiguous_format else "channels_last"
        rows.append(f"| step | {name} | {t['dense'] * 1e3:.0f} | {t['ch'] * 1e3:.0f} | "
                    f"{t['dense'] / t['ch']:.2f}x |")
        print(rows[-1], flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--net-batch", type=int, default=2)
    p.add_argument("--net-reps", type=int, default=3)
    p.add_argument("--net-size", type=int, default=224)
    p.add_argument("--no-net", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, zerofwht {zerofwht.__version__} ({zerofwht.cpu_isa()}), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} thread(s), fp32, forward + backward, medians of {args.reps}", flush=True)
    bench_shapes(args.batch, args.reps)
    if not args.no_net:
        bench_network(args.net_batch, args.net_reps, args.net_size)


if __name__ == "__main__":
    main()
