"""The rank constraint of partial-identity initialization (ZerO paper, Theorem 1 and Figure 3).

A 3-layer ReLU MLP 64 -> N_h -> N_h -> 10 on sklearn's digits (N_x = 64 features), trained with
SGD from (a) partial identity on every layer, (b) ZerO (a Hadamard block on the
dimension-increasing layer 64 -> N_h, identity / partial identity elsewhere) and (c) Kaiming.
We track rank(W2 - I), W2 the N_h x N_h middle layer, over training.

Expected: (a) rank(W2 - I) <= N_x = 64 at every step (the "training degeneracy": with I* on the
first layer, the hidden units 64..N_h-1 stay exactly zero, so W2 - I only ever changes in 64
columns); (b) ZerO's Hadamard layer breaks it: the rank grows past 64; (c) full rank from step 0.

Training runs in float64 (default; ``--dtype float32`` possible) so that the rank is unambiguous:
rank = torch.linalg.matrix_rank(W2 - I) with its default tolerance, sigma_max * N_h * eps(dtype)
(about 1e-13 sigma_max in float64). In float32 the fp32 rounding of W2 (entries near 1) adds a
noise floor of singular values around 1e-6 that grows with the number of steps. Column
"max nonzero cols" counts the columns of W2 - I with any nonzero entry (an exact bound on the rank).

    python examples/rank_constraint.py [--out DIR] [--quick]
"""
from __future__ import annotations

import time

import torch

import _common as C

SCHEMES = [("partial_identity", "(a) partial identity"), ("zero", "(b) ZerO"),
           ("kaiming", "(c) Kaiming")]


def rank_stats(model) -> tuple:
    w = model.fc2.weight.detach()
    d = w - torch.eye(w.shape[0], dtype=w.dtype)
    rank = int(torch.linalg.matrix_rank(d)) if bool(d.any()) else 0
    cols = int((d != 0).any(0).sum())
    return rank, cols


def gap(model, rank: int) -> str:
    """sigma_r and sigma_{r+1} of W2 - I (relative to sigma_1): how clear the numerical rank is."""
    w = model.fc2.weight.detach()
    s = torch.linalg.svdvals(w - torch.eye(w.shape[0], dtype=w.dtype)).to(torch.float64)
    nxt = f"{s[rank] / s[0]:.0e}" if rank < len(s) else "-"
    return f"{s[rank - 1] / s[0]:.0e} / {nxt}" if rank > 0 else "-"


def main():
    args = C.parse_args(__doc__.splitlines()[0], lambda p: (
        p.add_argument("--epochs", type=int, default=30),
        p.add_argument("--lr", type=float, default=0.05),
        p.add_argument("--every", type=int, default=10, help="measure the rank every k steps"),
        p.add_argument("--dtype", choices=["float64", "float32"], default="float64"),
        p.add_argument("--threads", type=int, default=1,
                       help="torch threads (default 1: these matrices are small)")))
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    widths = (256, 512)
    epochs, every = args.epochs, args.every
    if args.quick:
        widths, epochs, every = (128,), 2, 5
    torch.manual_seed(0)
    xtr, ytr, xte, yte = C.load_digits_split(dtype=dtype)
    n_x = xtr.shape[1]
    t0 = time.perf_counter()
    curves, rows = {}, []
    for hidden in widths:
        for scheme, label in SCHEMES:
            model = C.MLP(n_x, hidden, 10).to(dtype)
            C.init_scheme(model, scheme, torch.Generator().manual_seed(0))
            trace = []

            def on_step(step, model=model, trace=trace):
                if step <= 20 or step % every == 0:  # every step at first, then every k
                    trace.append((step,) + rank_stats(model))

            losses = C.train_sgd(model, xtr, ytr, epochs=epochs, lr=args.lr,
                                 order_generator=torch.Generator().manual_seed(0), on_step=on_step)
            if trace[-1][0] != len(losses):  # always include the final step
                trace.append((len(losses),) + rank_stats(model))
            curves[(hidden, scheme)] = trace
            ranks = [r for _, r, _ in trace]
            max_cols = max(c for _, _, c in trace)
            if scheme == "partial_identity":
                verdict = "bounded by 64: " + ("yes" if max(ranks) <= n_x else "NO")
            elif scheme == "zero":
                verdict = "exceeds 64: " + ("yes" if max(ranks) > n_x else "NO")
            else:
                verdict = "full rank at step 0: " + ("yes" if ranks[0] == hidden else "NO")
            rows.append([hidden, label, ranks[0], max(ranks), ranks[-1], gap(model, ranks[-1]),
                         max_cols, f"{100 * C.accuracy(model, xte, yte):.1f}", verdict])
    elapsed = time.perf_counter() - t0

    steps = curves[(widths[0], "zero")][-1][0]
    text = "\n".join([
        C.header("Rank constraint of partial identity (ZerO Theorem 1 / Figure 3)"),
        f"MLP 64 -> N_h -> N_h -> 10 on load_digits (N_x = {n_x}), SGD lr {args.lr} momentum 0.9, "
        f"batch 64, {epochs} epochs ({steps} steps), {args.dtype}; rank(W2 - I) = "
        f"torch.linalg.matrix_rank default tolerance (sigma_max * N_h * eps), at steps 0-20 and "
        f"every {every} steps; "
        f"{elapsed:.0f} s.",
        "",
        C.table(["N_h", "init", "rank step 0", "max rank", "final rank",
                 "final s_r / s_r+1 (rel.)", "max nonzero cols", "test acc %", "claim"], rows),
        "",
        f"(a) stays at {n_x - int((xtr.std(0) == 0).sum())}, below 64: "
        f"{int((xtr.std(0) == 0).sum())} of the 64 standardized pixels are constant 0 in the "
        "training set, and the hidden units they feed never move.",
        "(b) ZerO exceeds 64 but levels off near N_x + 10: with N_x = 64 a power of two, "
        "H_N[:, :64] is H_64 tiled N_h/64 times down the rows (Sylvester order: H_N = "
        "H_(N/64) kron H_64), so the hidden layer starts as N_h/64 identical copies of 64 units and "
        "only the classifier's partial identity (its 10 rows) tells the copies apart; in this run "
        f"rank(W2 - I) reaches N_x + 10 = {n_x + 10}.",
    ])
    C.write_report(args.out, "rank_constraint", text)

    plt = C.pyplot()
    fig, axes = plt.subplots(1, len(widths), figsize=(5.5 * len(widths), 4), squeeze=False)
    for ax, hidden in zip(axes[0], widths):
        for scheme, label in SCHEMES:
            tr = curves[(hidden, scheme)]
            ax.plot([s for s, _, _ in tr], [r for _, r, _ in tr], label=label, marker=".", ms=3)
        ax.axhline(n_x, color="gray", ls="--", lw=1, label=f"N_x = {n_x}")
        ax.axhline(n_x + 10, color="gray", ls=":", lw=1, label=f"N_x + 10 = {n_x + 10}")
        ax.set_title(f"N_h = {hidden}")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("rank(W2 - I)")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_yscale("log")
        ticks = sorted({1, 10, n_x, hidden})
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_ylim(0.8, hidden * 1.5)
        ax.set_xlim(0, tr[-1][0] * 1.1)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("rank(W2 - I) during training, 3-layer ReLU MLP on digits")
    fig.tight_layout()
    png = f"{args.out}/rank_constraint.png"
    fig.savefig(png, dpi=120)
    print(f"\nwrote {png}")


if __name__ == "__main__":
    main()
