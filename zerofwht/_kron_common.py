"""Shared pieces of the K * 2^k ops (zerofwht/kron.py, zerofwht/triton_kron.py): the argument
check every op runs (also on fake tensors), and the fake kernel, autograd and vmap rules registered
on each of them. No other package module is imported here, so both op layers can use it."""
from __future__ import annotations

import torch

from ._checks import FLOAT_DTYPES


def check_op_args(op: str, x: torch.Tensor, base: torch.Tensor, n: int, out_features: int) -> None:
    # The ops validate shapes themselves: users may call torch.ops directly. The +-1 entries and
    # H H^T = K I are the front end's job (data-dependent, not checkable on fake tensors).
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: x must be a floating tensor (float16/bfloat16/float32/float64), "
                        f"got dtype={x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{op}: x must have at least 1 dimension, got a 0-d tensor")
    if base.dim() != 2 or base.shape[0] != base.shape[1] or base.shape[0] < 1:
        raise ValueError(f"{op}: base must be a K x K matrix, got shape {tuple(base.shape)}")
    if not base.dtype.is_floating_point:
        raise TypeError(f"{op}: base must be a floating tensor, got dtype={base.dtype}")
    if base.device != x.device:
        raise RuntimeError(f"{op}: base is on {base.device} but x is on {x.device}")
    k = base.shape[0]
    p = n // k if k else 0
    if n < 1 or n % k or p & (p - 1) or n < x.shape[-1]:
        raise ValueError(f"{op}: n must be K * 2^k (K={k}) and >= x.shape[-1]={x.shape[-1]}, "
                         f"got n={n}")
    if not 1 <= out_features <= n:
        raise ValueError(f"{op}: out_features must be in [1, n={n}], got out_features={out_features}")


def _make_fake(op: str):
    def fake(x, base, n, out_features, scale):
        check_op_args(op, x, base, n, out_features)
        return x.new_empty((*x.shape[:-1], out_features))
    return fake


def _setup_context(ctx, inputs, output):
    x, base, n, _out_features, scale = inputs
    ctx.d_in, ctx.n, ctx.scale = x.shape[-1], n, scale
    ctx.save_for_backward(base)


def make_backward(op):
    def backward(ctx, grad):
        (base,) = ctx.saved_tensors
        # adjoint of s I*(out x n) (H_K kron H_p) I*(n x in): s I*(in x n) (H_K^T kron H_p) I*(n x out)
        return op(grad, base.t().contiguous(), ctx.n, ctx.d_in, ctx.scale), None, None, None, None
    return backward


def make_vmap(op):
    # the op treats every dimension but the last as a batch of rows: a vmapped dimension is one more
    def vmap_rule(info, in_dims, x, base, n, out_features, scale):
        if in_dims[1] is not None:
            raise ValueError("vmap over base is not supported (one K x K matrix per call)")
        bdim = in_dims[0]
        if bdim is None:
            return op(x, base, n, out_features, scale), None
        return op(x.movedim(bdim, 0), base, n, out_features, scale), 0
    return vmap_rule


def register(name: str) -> None:
    """Fake kernel, autograd and vmap rule of op ``zerofwht::<name>`` (schema as fwht_kron)."""
    op = getattr(torch.ops.zerofwht, name)
    torch.library.register_fake(f"zerofwht::{name}")(_make_fake(f"zerofwht::{name}"))
    torch.library.register_autograd(f"zerofwht::{name}", make_backward(op),
                                    setup_context=_setup_context)
    torch.library.register_vmap(f"zerofwht::{name}", make_vmap(op))
