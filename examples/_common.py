"""Shared pieces of the example experiments: the digits data, the models, the initialization
schemes, a plain SGD loop, tables and the command line (``--out``, ``--quick``).

Not part of the package API; the scripts import it as ``_common`` (their own directory is on
``sys.path`` when run as ``python examples/<name>.py``).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without an installed package
    sys.path.insert(0, str(REPO))

import zerofwht  # noqa: E402
import zerofwht.init  # noqa: E402,F401
import zerofwht.nn  # noqa: E402,F401

DEFAULT_OUT = REPO / "bench_out" / "examples"

SCHEME_LABELS = {
    "zero": "ZerO",
    "idinit": "IDInit",
    "zero_weight_random_bias": "zero W + random b",
    "partial_identity": "partial identity",
    "kaiming": "Kaiming (normal, fan_in, relu)",
}


# ----------------------------------------------------------------------------------------------
# Command line and reporting
# ----------------------------------------------------------------------------------------------
def parse_args(description: str, extra=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    # A rerun must not rewrite the tracked snapshot in examples/out/ (its header carries the date
    # and its numbers the run): new results go to an ignored directory unless asked for.
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="output directory for the PNG and the table (default: bench_out/examples, "
                        "not tracked; --out examples/out replaces the snapshot the README shows)")
    p.add_argument("--quick", action="store_true",
                   help="a few-second smoke run with tiny settings (numbers not meaningful)")
    if extra is not None:
        extra(p)
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return args


def header(title: str) -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"## {title}\n{now} | torch {torch.__version__} | zerofwht {zerofwht.__version__} | "
            f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")


def table(headers, rows) -> str:
    """A Markdown table (columns padded for the terminal)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(cells[0]), sep] + [fmt(r) for r in cells[1:]])


def write_report(out: str, name: str, text: str) -> None:
    print(text)
    (Path(out) / f"{name}.md").write_text(text + "\n")


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ----------------------------------------------------------------------------------------------
# Data: sklearn's digits (8x8 images, 64 features, 10 classes; shipped with sklearn, no download)
# ----------------------------------------------------------------------------------------------
def load_digits_split(test_fraction: float = 0.25, split_seed: int = 0, dtype=torch.float32):
    """Fixed stratified train/test split, standardized with the training set's mean and std
    (constant pixels keep std 1). Returns ``(x_train, y_train, x_test, y_test)`` tensors."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=test_fraction,
                                          random_state=split_seed, stratify=d.target)
    mean, std = xtr.mean(0), xtr.std(0)
    std[std == 0] = 1.0
    f = lambda a: torch.tensor((a - mean) / std, dtype=dtype)  # noqa: E731
    return f(xtr), torch.tensor(ytr), f(xte), torch.tensor(yte)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
class MLP(nn.Module):
    """3-layer ReLU MLP: d_in -> hidden -> hidden -> d_out (fc1 increases the dimension)."""

    def __init__(self, d_in: int = 64, hidden: int = 256, d_out: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, d_out)

    residual_last: tuple = ()  # no residual branches

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class ResMLP(nn.Module):
    """Residual ReLU MLP: stem d_in -> hidden, ``blocks`` residual branches ``h + W relu(h)``
    (one layer per branch, as the convolutions of the ZerO authors' augmented ResNet), then
    relu and a classifier hidden -> d_out."""

    def __init__(self, d_in: int = 64, hidden: int = 256, d_out: int = 10, blocks: int = 2):
        super().__init__()
        self.stem = nn.Linear(d_in, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.head = nn.Linear(hidden, d_out)
        self.residual_last = tuple(f"blocks.{i}" for i in range(blocks))

    def forward(self, x):
        h = self.stem(x)
        for b in self.blocks:
            h = h + b(torch.relu(h))
        return self.head(torch.relu(h))


def init_scheme(model: nn.Module, scheme: str, generator: torch.Generator) -> None:
    """Initialize ``model`` in place.

    * ``"kaiming"``: ``kaiming_normal_(nonlinearity="relu")`` weights (fan_in), zero biases;
    * ``"zero"``: ``init_model_(model, "zero")``; for ``ResMLP`` the residual branches are then
      zeroed, as in the ZerO authors' ResNet (identity comes from the skip connections);
    * ``"idinit"``: ``init_model_(model, "idinit", residual_last=...)`` (IDIZ on each branch's
      last layer and the classifier, tau = sqrt(2) on the first layer);
    * ``"partial_identity"``, ``"zero_weight_random_bias"``: ``init_model_`` with that scheme
      (biases N(0, 0.01^2) from ``generator`` for the latter).
    """
    if scheme == "kaiming":
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)
                    nn.init.zeros_(m.bias)
        return
    zerofwht.init.init_model_(model, scheme, residual_last=getattr(model, "residual_last", ()),
                              generator=generator)
    if scheme == "zero" and isinstance(model, ResMLP):
        with torch.no_grad():
            for b in model.blocks:
                b.weight.zero_()


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def accuracy(model: nn.Module, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train_sgd(model, x, y, *, epochs: int, lr: float, batch_size: int = 64, momentum: float = 0.9,
              order_generator: torch.Generator, on_step=None) -> list:
    """Plain minibatch SGD on cross-entropy; the shuffling comes from ``order_generator``.
    ``on_step(step)`` is called before the first step and after every step. Returns the losses."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses, step = [], 0
    if on_step is not None:
        on_step(0)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=order_generator)
        for i in range(0, x.shape[0], batch_size):
            idx = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if on_step is not None:
                on_step(step)
    return losses
