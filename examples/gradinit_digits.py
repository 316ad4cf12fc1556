"""GradInit (Zhu et al. 2021) on top of an initialization, on sklearn's digits.

The MLP 64 -> 256 -> 256 -> 10 starts from Kaiming, from Kaiming with every weight multiplied by
4 (a badly scaled start), and from ZerO; each with and without GradInit (SGD target, eta = the
training learning rate, step normalized as in the authors' launch scripts). Reported: the quantity GradInit minimizes, the loss on a held-out
minibatch after one SGD step from a training minibatch (mean over 32 batch pairs), the test
accuracy after a short training, and the learned scales.

    python examples/gradinit_digits.py [--out DIR] [--quick]
"""
from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn

import _common as C
from zerofwht.gradinit import gradinit


def loss_after_one_step(model, x, y, lr, pairs, seed=99):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(pairs):
        perm = torch.randperm(x.shape[0], generator=g)
        a, b = perm[:64], perm[64:128]
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=lr)
        nn.functional.cross_entropy(m(x[a]), y[a]).backward()
        opt.step()
        with torch.no_grad():
            out.append(nn.functional.cross_entropy(m(x[b]), y[b]).item())
    return statistics.mean(out)


def start(scheme):
    model = C.MLP(64, 256, 10)
    base = "kaiming" if scheme.startswith("kaiming") else scheme
    C.init_scheme(model, base, torch.Generator().manual_seed(0))
    if scheme == "kaiming x4":
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    m.weight.mul_(4.0)
    return model


def main():
    args = C.parse_args(__doc__.splitlines()[0], lambda p: (
        p.add_argument("--lr", type=float, default=0.05),
        p.add_argument("--iters", type=int, default=100),
        p.add_argument("--epochs", type=int, default=3),
        p.add_argument("--threads", type=int, default=1)))
    torch.set_num_threads(args.threads)
    iters, epochs, pairs = args.iters, args.epochs, 32
    if args.quick:
        iters, epochs, pairs = 5, 1, 4
    xtr, ytr, xte, yte = C.load_digits_split()
    t0 = time.perf_counter()
    rows, curves = [], {}
    for scheme in ("kaiming", "kaiming x4", "zero"):
        for use in (False, True):
            model = start(scheme)
            scales, hist = {}, []
            if use:
                scales = gradinit(model, nn.CrossEntropyLoss(), (xtr, ytr), batch_size=64,
                                  lr=args.lr, gradinit_lr=1e-2, gradinit_iters=iters,
                                  grad_norm_bound=1.0, normalize_grad=True,
                                  generator=torch.Generator().manual_seed(0),
                                  progress=False, history=hist)
            one_step = loss_after_one_step(model, xtr, ytr, args.lr, pairs)
            losses = C.train_sgd(model, xtr, ytr, epochs=epochs, lr=args.lr,
                                 order_generator=torch.Generator().manual_seed(0))
            label = f"{scheme}{' + GradInit' if use else ''}"
            curves[label] = losses
            w_scales = [v for k, v in scales.items() if k.endswith("weight")]
            print(f"  {label}: done", flush=True)
            constrained = sum(h["constrained"] for h in hist)
            rows.append([label, f"{one_step:.3f}", f"{losses[0]:.3f}", f"{losses[-1]:.3f}",
                         f"{100 * C.accuracy(model, xte, yte):.1f}",
                         ", ".join(f"{v:.2f}" for v in w_scales) if use else "-",
                         f"{constrained}/{len(hist)}" if use else "-"])
    elapsed = time.perf_counter() - t0
    text = "\n".join([
        C.header("GradInit on digits"),
        f"MLP 64-256-256-10, SGD lr {args.lr} momentum 0.9, batch 64, {epochs} epoch(s); GradInit: "
        f"{iters} iterations, target SGD eta {args.lr} with normalize_grad (as the authors' launch "
        f"scripts), gamma 1, gradinit_lr 1e-2, min_scale 0.01, grad_clip 1, batches of 64 (+64 overlap) drawn with a seeded generator; "
        f"'loss after 1 step' = held-out minibatch loss after one SGD step (mean of {pairs} pairs); "
        f"{elapsed:.0f} s.",
        "",
        C.table(["init", "loss after 1 step", "first train loss", "last train loss",
                 "test acc %", "learned weight scales (fc1, fc2, fc3)", "constraint steps"], rows),
    ])
    C.write_report(args.out, "gradinit_digits", text)

    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, losses) in enumerate(curves.items()):
        win = 10  # running mean over the last `win` steps
        sm = [statistics.mean(losses[max(0, j - win + 1):j + 1]) for j in range(len(losses))]
        ax.plot(range(len(sm)), sm, "-" if "GradInit" in label else "--",
                color=f"C{i // 2}", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training loss (running mean of 10 steps)")
    ax.legend(fontsize=8)
    ax.set_title("Training loss with and without GradInit")
    fig.tight_layout()
    png = f"{args.out}/gradinit_digits.png"
    fig.savefig(png, dpi=120)
    print(f"\nwrote {png}")


if __name__ == "__main__":
    main()
