"""Autograd and batching (``torch.vmap``) rules of every functional transform op (C++, pure
PyTorch, Triton): one formula each, registered per op.

Autograd: the adjoint of ``s * I*(out x n) H_n I*(n x in)`` is ``s * I*(in x n) H_n I*(n x out)``;
H_n is symmetric, so the gradient is the same op with ``d_in`` and ``out_features`` swapped, and
one op serves forward, backward and double backward.

vmap: the op transforms the last dimension and treats every other dimension as a batch of rows,
so a vmapped dimension is one more leading batch dimension: move it to the front and call the op
once (no per-sample loop, no fallback warning).
"""
from __future__ import annotations

import torch


def setup_context(ctx, inputs, output):
    x, n, _out_features, scale = inputs
    ctx.d_in, ctx.n, ctx.scale = x.shape[-1], n, scale


def make_backward(op):
    def backward(ctx, grad):
        return op(grad, ctx.n, ctx.d_in, ctx.scale), None, None, None
    return backward


def make_vmap(op):
    def vmap_rule(info, in_dims, x, n, out_features, scale):
        bdim = in_dims[0]
        if bdim is None:
            return op(x, n, out_features, scale), None
        return op(x.movedim(bdim, 0), n, out_features, scale), 0
    return vmap_rule


def register(name: str) -> None:
    """Autograd and vmap rules for the functional transform op ``zerofwht::<name>``."""
    op = getattr(torch.ops.zerofwht, name)
    torch.library.register_autograd(f"zerofwht::{name}", make_backward(op),
                                    setup_context=setup_context)
    torch.library.register_vmap(f"zerofwht::{name}", make_vmap(op))
