"""A small character-level transformer language model trained from three initializations.

Text: the source of Python's own ``argparse`` module (it ships with every Python), 90 % for
training, the last 10 % held out. Model: character embedding + learned positions, pre-norm
``nn.TransformerEncoder`` (causal mask), final LayerNorm, linear head. Initializations:

* ``default``: PyTorch's own (Kaiming-uniform Linear, xavier in-projection of the attention);
* ``zero``: ``zerofwht.init.init_model_(model, "zero")`` (ZerO: Q, K, V identity, MLP up-projection
  H I*, attention output / MLP down-projection / head zero);
* ``idinit``: ``init_model_(model, "idinit")`` (IDInit A.4: IDI_1 on Q, K, V; IDIZ_1e-6 on W^O,
  the residual-branch ends and the head).

Embeddings keep PyTorch's N(0, 1) in all three (the schemes leave lookup tables as they are), and
the residual-branch ends are found by ``residual_last="auto"``. Same data order per seed for all
three. Writes a loss-curve PNG and a Markdown table (mean +- std over seeds) into ``--out``.

    nice python examples/transformer_charlm.py [--out examples/out] [--steps 600] [--seeds 3] [--quick]
"""
from __future__ import annotations

import argparse
import inspect
import math
import os
import statistics
import time

import torch
from torch import nn

import zerofwht.init

INITS = ("default", "zero", "idinit")


def corpus():
    import argparse as src
    text = inspect.getsource(src)
    chars = sorted(set(text))
    idx = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([idx[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    return data[:n], data[n:], len(chars)


class CharLM(nn.Module):
    def __init__(self, vocab, d=64, heads=4, layers=2, ff=256, ctx=64):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(ctx),
                             persistent=False)

    def forward(self, x):
        t = x.shape[1]
        h = self.tok(x) + self.pos(torch.arange(t, device=x.device))
        return self.head(self.encoder(h, mask=self.mask[:t, :t], is_causal=True))


def batches(data, ctx, bs, g):
    while True:
        i = torch.randint(0, len(data) - ctx - 1, (bs,), generator=g)
        yield torch.stack([data[j:j + ctx] for j in i]), torch.stack([data[j + 1:j + ctx + 1] for j in i])


@torch.no_grad()
def evaluate(model, data, ctx, n=16):
    g = torch.Generator().manual_seed(1234)
    x, y = next(batches(data, ctx, n * 8, g))
    logits = model(x)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()


def run(init, seed, train, val, vocab, steps, ctx=64, bs=32, lr=2e-3):
    torch.manual_seed(seed)
    model = CharLM(vocab, ctx=ctx)
    if init != "default":
        zerofwht.init.init_model_(model, init)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    it = batches(train, ctx, bs, g)
    curve, val_curve = [], []
    for step in range(steps):
        x, y = next(it)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        curve.append(loss.item())
        if (step + 1) % max(1, steps // 6) == 0 or step == steps - 1:
            val_curve.append((step + 1, evaluate(model, val, ctx)))
    return curve, val_curve


def smooth(v, k=20):
    out, acc = [], []
    for x in v:
        acc.append(x)
        acc = acc[-k:]
        out.append(sum(acc) / len(acc))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="30 steps, 2 seeds (a smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.seeds = 30, 2
    torch.set_num_threads(1)
    train, val, vocab = corpus()
    results = {}
    t0 = time.perf_counter()
    for init in INITS:
        for seed in range(args.seeds):
            results[(init, seed)] = run(init, seed, train, val, vocab, args.steps)
            c, v = results[(init, seed)]
            print(f"{init:8s} seed {seed}: train {c[-1]:.3f}  val {v[-1][1]:.3f}  "
                  f"({time.perf_counter() - t0:.0f} s so far)", flush=True)
    os.makedirs(args.out, exist_ok=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = {"default": "tab:gray", "zero": "tab:blue", "idinit": "tab:orange"}
    for init in INITS:
        for seed in range(args.seeds):
            c, v = results[(init, seed)]
            ax.plot(smooth(c), color=colors[init], alpha=0.8, lw=1,
                    label=init if seed == 0 else None)
            ax.plot([s for s, _ in v], [x for _, x in v], "o", color=colors[init], ms=3)
    ax.set_xlabel("step (batch 32 x 64 characters)")
    ax.set_ylabel("cross-entropy (nats / char)")
    ax.set_title(f"char-level transformer LM on argparse.py, {args.seeds} seeds "
                 f"(lines: train, 20-step mean; dots: held-out)", fontsize=9)
    ax.set_ylim(top=math.log(vocab) + 0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "transformer_charlm.png"), dpi=110)

    def ms(xs):
        return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"

    checkpoints = sorted({s for s, _ in results[(INITS[0], 0)][1]})
    lines = ["# Character-level transformer LM: default vs ZerO vs IDInit initialization", "",
             f"Text: `inspect.getsource(argparse)` ({len(train) + len(val)} characters, vocabulary "
             f"{vocab}); 2 pre-norm layers, d = 64, 4 heads, MLP 256, context 64, batch 32, AdamW "
             f"lr 2e-3, clip 1.0, {args.steps} steps, seeds 0..{args.seeds - 1}. Held-out "
             f"cross-entropy (nats/char, mean ± std over seeds):", "",
             "| init | " + " | ".join(f"step {s}" for s in checkpoints) + " | train (last 20 steps) |",
             "|---" * (len(checkpoints) + 2) + "|"]
    for init in INITS:
        cells = []
        for s in checkpoints:
            cells.append(ms([dict(results[(init, k)][1])[s] for k in range(args.seeds)]))
        tr = ms([sum(results[(init, k)][0][-20:]) / 20 for k in range(args.seeds)])
        lines.append(f"| {init} | " + " | ".join(cells) + f" | {tr} |")
    with open(os.path.join(args.out, "transformer_charlm.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
