r"""GradInit (Zhu, Ni, Xu, Kong, Huang, Goldstein: "GradInit: Learning to Initialize Neural Networks
for Stable and Efficient Training", arXiv 2102.08098), on top of any initialization. (One file of
about 400 lines, a third of them documentation: the algorithm, its multipliers' optimizer and its
batch source are read together.)

GradInit learns one positive scalar multiplier ``alpha_i`` per parameter tensor ``theta_i`` (the
model keeps its initial *directions*, only their norms change) so that one step of the target
optimizer gives the lowest loss on a second batch:

.. code-block:: text

    minimize over alpha   L(S2; theta - eta * A[g])       with  theta = alpha * theta0,
                                                                g = grad L(S1; theta)
    subject to            ||g||_* <= gamma                  (|| ||_2 for SGD, || ||_1 for Adam)

``A[g] = g`` for SGD (optionally ``g / ||g||_2``) and ``A[g] = sign(g)`` for Adam (its first step).
When an iteration violates the constraint it minimizes ``||g||_*`` instead (a projection step),
with its own Adam moments, as in the authors' code. Implementation choices that follow the
authors' code (github.com/zhuchen03/gradinit, ``gradinit_utils.py`` / ``RescaleAdam``):

* the multipliers are optimized by Adam on each scalar; the gradient of a multiplier is
  ``<dF/dtheta_i, theta_i> * ||theta0_i|| / ||theta_i||`` (= ``dF/dalpha_i`` by the chain rule),
  clipped to ``[-grad_clip, grad_clip]``; ``alpha_i`` is floored at ``min_scale`` for weights and
  at ``bias_min_scale`` (0) for biases, and capped at ``max_scale``;
* tensors whose initial norm is zero (typically biases, and the zero layers of ZerO) are skipped:
  scaling them is meaningless; they keep ``alpha = 1``. A tensor whose multiplier reaches 0 (a
  bias at its floor of 0) has zero norm from then on and is skipped in the same way: it stays at
  0, and the Adam moments of its earlier steps do not push it back;
* a parameter counts as a bias (floor ``bias_min_scale``) when its own name contains ``bias``
  (``fc.bias``, ``rnn.bias_ih_l0``), as the authors' ``'bias' in name``;
* the step ``theta - eta * A[g]`` uses a detached ``g`` (first order; ``second_order=True``
  differentiates through ``g`` for SGD, as the paper's formula reads), and the objective is
  ``L(S2; ...) / eta``;
* by default (``overlap=True``) each iteration draws three batches ``b0, b1, b2`` and uses
  ``S1 = b0 + b1``, ``S2 = b0 + b2`` (concatenated), as the authors' code does; ``overlap=False``
  is their ``--batch_no_overlap``: a fourth draw ``b3`` replaces ``b0`` in ``S2 = b3 + b2``, so S1
  and S2 are two full-size batches with no sample drawn twice;
* the model runs in eval mode (no dropout) except batch-norm layers, which normalize with the
  statistics of the batch and do not update their running statistics; every module's mode is
  restored afterwards.
"""
from __future__ import annotations

import math
import numbers
import sys
from contextlib import contextmanager
from typing import Callable, Iterable, Optional

import torch
from torch import nn

__all__ = ["gradinit", "MultiplierAdam", "multiplier_grad"]


# ----------------------------------------------------------------------------------------------
# The multipliers' optimizer
# ----------------------------------------------------------------------------------------------
def multiplier_grad(param_grad: torch.Tensor, param: torch.Tensor, init_norm: float) -> float:
    """Gradient of a scalar multiplier: ``<param_grad, param> * init_norm / ||param||`` (fp64).

    With ``param = alpha * theta0`` and ``||theta0|| = init_norm`` this is ``dF/dalpha =
    <dF/dparam, theta0>``. Returns 0.0 when ``param`` has norm 0.
    """
    p = param.detach().to(torch.float64)
    norm = float(torch.linalg.vector_norm(p))
    if norm == 0.0:
        return 0.0
    return float((param_grad.detach().to(torch.float64) * p).sum()) * init_norm / norm


class MultiplierAdam:
    """Adam on one scalar per parameter tensor, as the GradInit authors' ``RescaleAdam``.

    ``step(grads, constraint)`` takes ``{name: d objective / d alpha}`` and updates
    ``self.alpha[name]``: the gradient is clipped to ``[-grad_clip, grad_clip]`` (``grad_clip <= 0``:
    no clipping), then one Adam step with bias correction::

        m = b1 * m + (1 - b1) * g;   v = b2 * v + (1 - b2) * g^2;   t += 1
        alpha = alpha - lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)
        alpha = min(max(alpha, min_scale[name]), max_scale)

    Objective steps and constraint (gradient-norm) steps keep separate ``m, v, t``. A multiplier
    at 0 is left alone (no step, moments untouched): its tensor has zero norm, so its gradient
    says nothing, and the moments of earlier steps must not revive it.
    """

    def __init__(self, names: Iterable[str], *, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                 min_scale=0.0, max_scale: float = math.inf, grad_clip: float = 0.0):
        names = list(names)
        self.lr, self.eps, self.max_scale, self.grad_clip = lr, eps, max_scale, grad_clip
        self.beta1, self.beta2 = betas
        if isinstance(min_scale, dict):
            self.min_scale = {n: float(min_scale[n]) for n in names}
        else:
            self.min_scale = {n: float(min_scale) for n in names}
        self.alpha = {n: 1.0 for n in names}
        zero = {"t": 0, "m": 0.0, "v": 0.0}
        self.state = {n: {"objective": dict(zero), "constraint": dict(zero)} for n in names}

    def step(self, grads: dict, constraint: bool = False) -> dict:
        """Apply one step for every name in ``grads`` (names absent are left alone); returns alpha."""
        kind = "constraint" if constraint else "objective"
        for name, g in grads.items():
            if self.alpha[name] == 0.0:
                continue
            g = float(g)
            if self.grad_clip > 0:
                g = max(min(g, self.grad_clip), -self.grad_clip)
            st = self.state[name][kind]
            st["t"] += 1
            st["m"] = self.beta1 * st["m"] + (1 - self.beta1) * g
            st["v"] = self.beta2 * st["v"] + (1 - self.beta2) * g * g
            bc1 = 1 - self.beta1 ** st["t"]
            bc2 = 1 - self.beta2 ** st["t"]
            denom = math.sqrt(st["v"] / bc2) + self.eps
            a = self.alpha[name] - self.lr / bc1 * st["m"] / denom
            self.alpha[name] = min(max(a, self.min_scale[name]), self.max_scale)
        return self.alpha


# ----------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------
class _BatchSource:
    """Cycles through an iterable of ``(inputs, targets)``, or draws shuffled minibatches (without
    replacement within an epoch) from a ``(X, Y)`` pair of tensors with ``generator``."""

    def __init__(self, batches, batch_size, generator):
        self.dataset = (isinstance(batches, tuple) and len(batches) == 2
                        and all(isinstance(t, torch.Tensor) for t in batches))
        if self.dataset:
            X, Y = batches
            if X.shape[0] != Y.shape[0] or X.shape[0] == 0:
                raise ValueError(f"gradinit: batches=(X, Y) must hold the same nonzero number of "
                                 f"samples, got {X.shape[0]} and {Y.shape[0]}")
            if batch_size is None:
                raise ValueError("gradinit: batches=(X, Y) (a data set) needs batch_size=")
            self.X, self.Y = X, Y
            self.batch_size = min(batch_size, X.shape[0])
            self.generator = generator
            self.perm, self.pos = None, 0
        else:
            if batch_size is not None:
                raise ValueError("gradinit: batch_size= applies only to batches=(X, Y) tensors; "
                                 "an iterable of batches is used as it is")
            try:
                self.it = iter(batches)
            except TypeError:
                raise TypeError(f"gradinit: batches must be an iterable of (inputs, targets) or a "
                                f"tuple (X, Y) of tensors, got {type(batches).__name__}") from None
            self.source = batches
            self.restartable = self.it is not batches
        self.count = 0

    def next(self):
        self.count += 1
        if self.dataset:
            n = self.X.shape[0]
            if self.perm is None or self.pos + self.batch_size > n:
                gdev = self.generator.device if self.generator is not None else "cpu"
                self.perm = torch.randperm(n, generator=self.generator, device=gdev).to(self.X.device)
                self.pos = 0
            idx = self.perm[self.pos:self.pos + self.batch_size]
            self.pos += self.batch_size
            return self.X[idx], self.Y[idx.to(self.Y.device)]
        try:
            batch = next(self.it)
        except StopIteration:
            if not self.restartable:
                raise ValueError(f"gradinit: batches ran out after {self.count - 1} batches; pass a "
                                 f"re-iterable (a list, a DataLoader) or a (X, Y) pair of tensors "
                                 f"with batch_size=") from None
            self.it = iter(self.source)
            try:
                batch = next(self.it)
            except StopIteration:
                raise ValueError("gradinit: batches is empty") from None
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"gradinit: each batch must be a pair (inputs, targets), got "
                            f"{type(batch).__name__}")
        return batch[0], batch[1]


def _cat(a, b):
    """Concatenate two batches' inputs or targets along dim 0 (tensors, or tuples/lists/dicts)."""
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b.to(a.device)], dim=0)
    if isinstance(a, (tuple, list)):
        return type(a)(_cat(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    raise TypeError(f"gradinit: S1 and S2 are concatenations of two draws; cannot concatenate "
                    f"{type(a).__name__} (pass tensors, or tuples/lists/dicts of tensors)")


# ----------------------------------------------------------------------------------------------
# Module modes
# ----------------------------------------------------------------------------------------------
@contextmanager
def _gradinit_mode(model: nn.Module):
    """Eval mode everywhere (no dropout), except batch norms: batch statistics, running statistics
    neither used nor updated. Restores every module's training flag and BN setting on exit."""
    saved = [(m, m.training) for m in model.modules()]
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved_track = [(m, m.track_running_stats) for m in bns]
    try:
        model.eval()
        for m in bns:
            m.training = True
            m.track_running_stats = False  # forward passes None for running stats: no update
        yield
    finally:
        for m, t in saved_track:
            m.track_running_stats = t
        for m, training in saved:
            m.training = training


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------
def _real(value, name: str, *, positive: bool = False, minimum: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"gradinit: {name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if math.isnan(v):
        raise ValueError(f"gradinit: {name} must not be NaN")
    if positive and not v > 0:
        raise ValueError(f"gradinit: {name} must be > 0, got {name}={value!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"gradinit: {name} must be >= {minimum}, got {name}={value!r}")
    return v


def _is_bias(name: str) -> bool:
    """A bias by its own name (the last dotted part): ``bias``, ``bias_ih_l0``, ``in_proj_bias``."""
    return "bias" in name.rsplit(".", 1)[-1]


def _norm_of(grads, optimizer: str) -> torch.Tensor:
    if optimizer == "adam":  # <g, sign(g)>: the first Adam step's inner product
        return sum(g.abs().sum() for g in grads)
    return torch.sqrt(sum(g.square().sum() for g in grads))


# ----------------------------------------------------------------------------------------------
# GradInit
# ----------------------------------------------------------------------------------------------
def gradinit(model: nn.Module, loss_fn: Callable, batches, *, optimizer: str = "sgd",
             lr: float = 0.1, gradinit_lr: float = 1e-2, gradinit_iters: int = 100,
             grad_norm_bound: float = 1.0, min_scale: float = 0.01, bias_min_scale: float = 0.0,
             max_scale: float = math.inf, grad_clip: float = 1.0, betas=(0.9, 0.999),
             eps: float = 1e-8, normalize_grad: bool = False, second_order: bool = False,
             overlap: bool = True, batch_size: Optional[int] = None,
             generator: Optional[torch.Generator] = None, progress=True,
             history: Optional[list] = None) -> dict:
    r"""Learn one scale per parameter tensor of ``model`` by GradInit and apply it in place.

    See the module docstring for the objective. Call it after initializing ``model`` (any scheme:
    ``zerofwht.init.init_model_``, Kaiming, ...) and before training with ``optimizer``/``lr``.

    Args:
        model: the module. Every parameter with ``requires_grad`` gets a multiplier (tensors of
            norm 0 are skipped).
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar`` (e.g. ``nn.CrossEntropyLoss()``).
        batches: an iterable of ``(inputs, targets)`` (cycled when it runs out; a list or a
            ``DataLoader``), or a pair ``(X, Y)`` of tensors from which shuffled minibatches of
            ``batch_size`` rows are drawn with ``generator``.
        optimizer: the target optimizer, ``"sgd"`` (step ``-lr * g``) or ``"adam"`` (its first
            step, ``-lr * sign(g)``; the gradient norm is then the L1 norm).
        lr: the target optimizer's learning rate ``eta`` (the authors' ``--gradinit-eta``).
        gradinit_lr: learning rate of the multipliers' Adam (``--gradinit-lr``).
        gradinit_iters: number of GradInit iterations (each one objective or constraint step).
        grad_norm_bound: ``gamma`` of the constraint ``||g|| <= gamma`` (``--gradinit-gamma``).
        min_scale: floor of the weights' multipliers (``--gradinit-min-scale``).
        bias_min_scale: floor of the multipliers of parameters whose own name (the part after
            the last dot) contains ``bias``, e.g. ``fc.bias`` and ``rnn.bias_ih_l0``.
        max_scale: cap of every multiplier.
        grad_clip: clip of the multipliers' gradients (``--gradinit-grad-clip``; 0 = none).
        betas, eps: the multipliers' Adam hyper-parameters.
        normalize_grad: SGD only: step ``-lr * g / ||g||`` (``--gradinit-normalize-grad``, which
            the authors' launch scripts pass; the default ``False`` is the paper's formula).
        second_order: SGD only: differentiate through ``g`` in ``theta - lr * g``; the authors'
            code (default ``False``) detaches ``g``.
        overlap: ``S1 = b0 + b1``, ``S2 = b0 + b2`` from three draws (the authors' code; default);
            ``False``: ``S1 = b0 + b1``, ``S2 = b3 + b2`` from four draws (the authors'
            ``--batch_no_overlap``): two full-size batches that share no draw.
        batch_size: rows per draw when ``batches`` is ``(X, Y)``.
        generator: ``torch.Generator`` for the draws from ``(X, Y)``: GradInit is deterministic
            given it (CPU; the model runs without dropout).
        progress: ``True``: a progress line on stderr every ``gradinit_iters // 10`` iterations;
            an int ``k``: every ``k``; ``False``: silent.
        history: if a list, one record per iteration is appended: ``{"iter", "constrained",
            "grad_norm", "loss", "loss_after_step" (None on constraint steps), "scales"}``.

    Returns:
        ``{parameter name: multiplier}`` for every trainable parameter (1.0 for skipped ones).
        The parameters are multiplied in place: ``theta_i <- alpha_i * theta0_i``.

    Example::

        >>> zerofwht.init.init_model_(model, "zero")
        >>> scales = zerofwht.gradinit(model, nn.CrossEntropyLoss(), (X, Y), batch_size=64,
        ...                            lr=0.1, gradinit_iters=200, generator=torch.Generator().manual_seed(0))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"gradinit: model must be an nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"gradinit: loss_fn must be callable, got {type(loss_fn).__name__}")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f'gradinit: optimizer must be "sgd" or "adam", got optimizer={optimizer!r}')
    lr = _real(lr, "lr", positive=True)
    gradinit_lr = _real(gradinit_lr, "gradinit_lr", positive=True)
    if isinstance(gradinit_iters, bool) or not isinstance(gradinit_iters, numbers.Integral) \
            or gradinit_iters < 1:
        raise ValueError(f"gradinit: gradinit_iters must be an int >= 1, got {gradinit_iters!r}")
    gamma = _real(grad_norm_bound, "grad_norm_bound", positive=True)
    min_scale = _real(min_scale, "min_scale", minimum=0.0)
    bias_min_scale = _real(bias_min_scale, "bias_min_scale", minimum=0.0)
    max_scale = _real(max_scale, "max_scale", positive=True)
    if max_scale < max(min_scale, bias_min_scale):
        raise ValueError(f"gradinit: max_scale={max_scale} is below min_scale={min_scale} / "
                         f"bias_min_scale={bias_min_scale}")
    grad_clip = _real(grad_clip, "grad_clip", minimum=0.0)
    eps = _real(eps, "eps", minimum=0.0)
    if batch_size is not None and (isinstance(batch_size, bool)
                                   or not isinstance(batch_size, numbers.Integral) or batch_size < 1):
        raise ValueError(f"gradinit: batch_size must be an int >= 1, got {batch_size!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"gradinit: generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    if (normalize_grad or second_order) and optimizer != "sgd":
        raise ValueError("gradinit: normalize_grad and second_order apply to optimizer=\"sgd\" only")
    if isinstance(progress, bool):
        every = max(1, gradinit_iters // 10) if progress else 0
    elif isinstance(progress, numbers.Integral) and progress >= 0:
        every = int(progress)
    else:
        raise TypeError(f"gradinit: progress must be a bool or an int >= 0, got {progress!r}")

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("gradinit: the model has no parameter that requires grad")
    names = [n for n, _ in named]
    plist = [p for _, p in named]
    with torch.no_grad():
        theta0 = {n: p.detach().clone() for n, p in named}
    init_norm = {n: float(torch.linalg.vector_norm(theta0[n].to(torch.float64))) for n in names}
    active = [n for n in names if init_norm[n] > 0 and math.isfinite(init_norm[n])]
    floors = {n: (bias_min_scale if _is_bias(n) else min_scale) for n in active}
    opt = MultiplierAdam(active, lr=gradinit_lr, betas=betas, eps=eps, min_scale=floors,
                         max_scale=max_scale, grad_clip=grad_clip)
    source = _BatchSource(batches, batch_size, generator)

    def grads_or_zeros(out, inputs):
        gs = torch.autograd.grad(out, inputs, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, inputs)]

    def to_multiplier_grads(param_grads):
        # A tensor at zero norm (its multiplier floored at 0) gets no step, as in the authors' code.
        return {n: multiplier_grad(g, p, init_norm[n])
                for n, g, p in zip(names, param_grads, plist)
                if n in opt.alpha and bool(p.detach().ne(0).any())}

    constrained = 0
    with _gradinit_mode(model):
        for it in range(1, gradinit_iters + 1):
            x0, y0 = source.next()
            x1, y1 = source.next()
            xs, ys = _cat(x0, x1), _cat(y0, y1)
            loss = loss_fn(model(xs), ys)
            g = torch.autograd.grad(loss, plist, create_graph=True, allow_unused=True)
            g = [torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, plist)]
            gnorm = _norm_of(g, optimizer)
            record = {"iter": it, "grad_norm": gnorm.item(), "loss": loss.item()}
            if record["grad_norm"] > gamma:
                # Constraint violated: minimize the gradient norm instead (projection step).
                constrained += 1
                opt.step(to_multiplier_grads(grads_or_zeros(gnorm, plist)), constraint=True)
                record.update(constrained=True, loss_after_step=None)
            else:
                if optimizer == "adam":
                    direction = [gi.sign() for gi in g]
                elif normalize_grad:
                    direction = [gi / gnorm for gi in g]
                else:
                    direction = g
                if not second_order:
                    direction = [d.detach() for d in direction]
                stepped = {n: p - lr * d for n, p, d in zip(names, plist, direction)}
                x2, y2 = source.next()
                if not overlap:  # a fresh draw takes b0's place: S2 shares nothing with S1
                    x0, y0 = source.next()
                xs2, ys2 = _cat(x0, x2), _cat(y0, y2)
                out2 = torch.func.functional_call(model, stepped, (xs2,), strict=False)
                loss2 = loss_fn(out2, ys2)
                opt.step(to_multiplier_grads(grads_or_zeros(loss2 / lr, plist)), constraint=False)
                record.update(constrained=False, loss_after_step=loss2.item())
            with torch.no_grad():
                for n, p in named:
                    if n in opt.alpha:
                        p.copy_(theta0[n] * opt.alpha[n])
            record["scales"] = dict(opt.alpha)
            if history is not None:
                history.append(record)
            if every and (it % every == 0 or it == gradinit_iters):
                vals = list(opt.alpha.values()) or [1.0]
                after = record["loss_after_step"]
                print(f"gradinit {it:>{len(str(gradinit_iters))}}/{gradinit_iters}"
                      f"  loss {record['loss']:.4g}"
                      f"  after step {'-' if after is None else f'{after:.4g}'}"
                      f"  |g| {record['grad_norm']:.3g} (bound {gamma:g}, {constrained} constrained)"
                      f"  scales [{min(vals):.3g}, {max(vals):.3g}]", file=sys.stderr, flush=True)
    return {n: opt.alpha.get(n, 1.0) for n in names}
