"""ZerO vs Kaiming vs Xavier on the same AugSkip ResNet-18, and ZerO's low-rank observation.

Data: scikit-learn's handwritten digits (1797 images, 8x8, shipped with the package), upsampled to
32x32 as in a CIFAR input pipeline, one input channel, a fixed stratified 75/25 split.
Model: ``zerofwht.models.augskip_resnet18`` at reduced width (default 8), the same architecture for
every init (fixed Hadamard stem path and shortcuts); only the init of the trainable tensors changes.
Training: SGD (momentum 0.9, weight decay 5e-4), cosine learning rate, batch 32, 12 epochs, one
thread by default (on a machine shared with other jobs, two threads spin-waiting on each other
were measured 9x slower per step).

Outputs (--out, default bench_out/examples/; the committed snapshot is examples/out/, written
with --out examples/out; no timestamps inside):
  augskip_digits.json          per init and seed: test accuracy and train loss per epoch, ranks
  augskip_digits.md            the table: final test accuracy mean +- std over seeds
  augskip_digits.png           test accuracy and train loss per epoch (mean, band = +-1 std)
  augskip_digits_rank.png      rank / stable rank of the first conv of groups 2-4 over training

The rank plot is the paper's Figure 7 observation: with ZerO the residual component of a layer
(its weight: the identity is in the skip, and the conv starts at zero) stays low-rank during
training, while a Kaiming-initialized weight is full-rank from the start. For Kaiming the plot also
shows the rank of the change ``W - W0``, which is the fairer comparison of what training adds.

Run:  python examples/augskip_digits.py   (one thread; 1163 s on the 2-core guest while it was
loaded by other jobs; a smoke run: --quick)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from zerofwht.models import augskip_resnet18  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A rerun must not rewrite the committed snapshot in examples/out/: by default results go to the
# ignored bench_out/examples (like the other examples); --out examples/out replaces the snapshot.
DEFAULT_OUT = os.path.join(ROOT, "bench_out", "examples")
INITS = ("zero", "kaiming", "xavier")
RANK_INITS = ("zero", "kaiming")
RANK_LAYERS = ("layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1")
RANK_TOL = 1e-3  # singular values above RANK_TOL * largest count towards the rank


def load_digits_32():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    y = torch.tensor(d.target)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0,
                                      stratify=d.target)
    mean, std = x[idx_tr].mean(), x[idx_tr].std()
    x = (x - mean) / std
    return x[idx_tr], y[idx_tr], x[idx_te], y[idx_te]


def ranks(w: torch.Tensor, w0: torch.Tensor | None = None):
    m = (w if w0 is None else w - w0).detach().double().reshape(w.shape[0], -1)
    s = torch.linalg.svdvals(m)
    if s[0] <= 0:
        return 0, 0.0
    return int((s > RANK_TOL * s[0]).sum()), float((s ** 2).sum() / s[0] ** 2)


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x[i:i + 256]).argmax(1) == y[i:i + 256]).sum())
                      for i in range(0, len(y), 256))
    model.train()
    return correct / len(y)


def train(init, seed, data, epochs, width, lr, batch, track_rank):
    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = augskip_resnet18(num_classes=10, in_channels=1, width=width, init=init)
    model.reset_parameters(generator=g)  # random inits drawn from the seeded generator
    named = dict(model.named_modules())
    w0 = {n: named[n].weight.detach().clone() for n in RANK_LAYERS}
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(ytr) / batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    rec = {"test_acc": [evaluate(model, xte, yte)], "train_loss": [], "rank": {}, "rank_steps": []}
    rank_every = max(1, steps_per_epoch // 4)

    def log_rank(step):
        rec["rank_steps"].append(step)
        for n in RANK_LAYERS:
            w = named[n].weight
            r, sr = ranks(w)
            e = rec["rank"].setdefault(n, {"max_rank": min(w.shape[0], w[0].numel()), "rank": [],
                                           "stable_rank": [], "delta_rank": [],
                                           "delta_stable_rank": []})
            e["rank"].append(r)
            e["stable_rank"].append(sr)
            dr, dsr = ranks(w, w0[n])
            e["delta_rank"].append(dr)
            e["delta_stable_rank"].append(dsr)

    step = 0
    if track_rank:
        log_rank(0)
    for _ in range(epochs):
        perm = torch.randperm(len(ytr), generator=g)
        total, count = 0.0, 0
        for i in range(0, len(ytr), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += loss.item() * len(idx)
            count += len(idx)
            if track_rank and step % rank_every == 0:
                log_rank(step)
        rec["train_loss"].append(total / count)
        rec["test_acc"].append(evaluate(model, xte, yte))
    if not track_rank:
        del rec["rank"], rec["rank_steps"]
    return rec


def plot(results, args, steps_per_epoch, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = {"zero": "C0", "kaiming": "C1", "xavier": "C2"}
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for init in INITS:
        acc = np.array([r["test_acc"] for r in results[init]]) * 100
        loss = np.array([r["train_loss"] for r in results[init]])
        e = np.arange(acc.shape[1])
        ax[0].plot(e, acc.mean(0), color=colors[init], label=init)
        ax[0].fill_between(e, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0),
                           color=colors[init], alpha=0.2)
        e = np.arange(1, loss.shape[1] + 1)
        ax[1].plot(e, loss.mean(0), color=colors[init], label=init)
        ax[1].fill_between(e, loss.mean(0) - loss.std(0), loss.mean(0) + loss.std(0),
                           color=colors[init], alpha=0.2)
    ax[0].set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(0, 100))
    ax[1].set(xlabel="epoch", ylabel="train loss", yscale="log")
    ax[0].legend()
    fig.suptitle(f"AugSkip ResNet-18 (width {args.width}) on digits 32x32, {len(args.seeds)} seeds")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "augskip_digits.png"), dpi=110, metadata={"Software": None})

    fig, ax = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
    for j, layer in enumerate(RANK_LAYERS):
        for init in RANK_INITS:
            r = results[init][0]
            x = np.array(r["rank_steps"]) / steps_per_epoch
            e = r["rank"][layer]
            ax[0, j].plot(x, e["rank"], color=colors[init], label=f"{init}: W")
            ax[1, j].plot(x, e["stable_rank"], color=colors[init], label=f"{init}: W")
            if init == "kaiming":
                ax[0, j].plot(x, e["delta_rank"], "--", color=colors[init], label="kaiming: W - W0")
                ax[1, j].plot(x, e["delta_stable_rank"], "--", color=colors[init],
                              label="kaiming: W - W0")
        ax[0, j].set(title=f"{layer} (first conv of group {j + 2})", ylabel=f"rank (tol {RANK_TOL:g})")
        ax[1, j].set(xlabel="epoch", ylabel="stable rank", yscale="log")
    ax[0, 0].legend(fontsize=8)
    fig.suptitle(f"Rank of the residual component over training (seed {args.seeds[0]})")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "augskip_digits_rank.png"), dpi=110, metadata={"Software": None})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="output folder (default bench_out/examples, not tracked; --out examples/out "
                        "replaces the committed snapshot)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 epoch, 1 seed, width 4, 320 training images (numbers mean "
                        "nothing)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds, args.width = 1, [0], 4
    out = args.out
    torch.set_num_threads(args.threads)
    os.makedirs(out, exist_ok=True)
    data = load_digits_32()
    if args.quick:
        data = (data[0][:320], data[1][:320], data[2], data[3])
    steps_per_epoch = math.ceil(len(data[1]) / args.batch)
    results = {}
    t0 = time.perf_counter()
    for init in INITS:
        results[init] = []
        for k, seed in enumerate(args.seeds):
            rec = train(init, seed, data, args.epochs, args.width, args.lr, args.batch,
                        track_rank=(init in RANK_INITS and k == 0))
            results[init].append(rec)
            print(f"{init:8s} seed {seed}: test acc {rec['test_acc'][-1] * 100:.2f}%  "
                  f"train loss {rec['train_loss'][-1]:.4f}  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    config = {k: getattr(args, k) for k in ("epochs", "seeds", "width", "lr", "batch", "threads")}
    config.update(train_size=len(data[1]), test_size=len(data[3]), rank_tol=RANK_TOL)
    with open(os.path.join(out, "augskip_digits.json"), "w") as f:
        json.dump({"config": config, "results": results}, f, indent=1)
    lines = ["| init | final test accuracy (%) | final train loss |", "|---|---|---|"]
    for init in INITS:
        acc = np.array([r["test_acc"][-1] for r in results[init]]) * 100
        loss = np.array([r["train_loss"][-1] for r in results[init]])
        lines.append(f"| {init} | {acc.mean():.2f} ± {acc.std():.2f} | "
                     f"{loss.mean():.4f} ± {loss.std():.4f} |")
    lines += ["", "| layer | init | rank at end | stable rank at end |", "|---|---|---|---|"]
    for layer in RANK_LAYERS:
        for init in RANK_INITS:
            e = results[init][0]["rank"][layer]
            lines.append(f"| {layer} | {init} | {e['rank'][-1]} of {e['max_rank']} | "
                         f"{e['stable_rank'][-1]:.2f} |")
            if init == "kaiming":
                lines.append(f"| {layer} | kaiming, W - W0 | {e['delta_rank'][-1]} of {e['max_rank']} | "
                             f"{e['delta_stable_rank'][-1]:.2f} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(out, "augskip_digits.md"), "w") as f:
        f.write(table)
    print(table)
    if not args.no_plots:
        plot(results, args, steps_per_epoch, out)


if __name__ == "__main__":
    main()
