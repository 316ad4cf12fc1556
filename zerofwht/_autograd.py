"""Autograd of every transform op (C++, pure PyTorch, Triton): one formula, registered per op.

The adjoint of ``s * I*(out x n) H_n I*(n x in)`` is ``s * I*(in x n) H_n I*(n x out)``: H_n is
symmetric, so the gradient is the same op with ``d_in`` and ``out_features`` swapped, and one op
serves forward, backward and double backward.
"""
from __future__ import annotations


def setup_context(ctx, inputs, output):
    x, n, _out_features, scale = inputs
    ctx.d_in, ctx.n, ctx.scale = x.shape[-1], n, scale


def make_backward(op):
    def backward(ctx, grad):
        return op(grad, ctx.n, ctx.d_in, ctx.scale), None, None, None
    return backward
