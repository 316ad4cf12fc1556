r"""The per-module rules of init_model_: what a rule function sees (:class:`RuleContext`), the
built-in rules (Linear / Conv, nn.MultiheadAttention, transformers' Conv1D, norms, embeddings) and
the registry users extend with :func:`register_rule`. Every write goes to a parameter's local
tensor at its global offset, so DTensor shards (FSDP2) are filled without communication."""
from __future__ import annotations

import re
from typing import Callable, Optional

import torch
from torch import nn

from .fill import _dtensor_local, _is_dtensor
from .residual import is_packed_qkv

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM_NAME = re.compile(r"(RMS|Layer|Group|Batch|Instance)Norm")


def _is_meta(t: torch.Tensor) -> bool:
    return t.is_meta or (_is_dtensor(t) and t._local_tensor.is_meta)


def _local_view(p: torch.Tensor, transpose: bool = False):
    """(local tensor, global offset, global shape) of a parameter; a DTensor gives its local shard.
    ``transpose``: the same for ``p.t()`` as a view (a 2-D weight stored as (in, out))."""
    if _is_dtensor(p):
        local, off, shape = _dtensor_local(p, "init_model_")
    else:
        local, off, shape = p, [0] * p.dim(), tuple(p.shape)
    if transpose:
        local, off, shape = local.t(), off[::-1], tuple(shape[::-1])
    return local, list(off), tuple(shape)


class RuleContext:
    """What a rule function sees for one module (see :func:`register_rule`). Each call writes one
    parameter (or a block of rows of it) and appends a record to the summary.

    Attributes: ``name`` (the module's name in ``model.named_modules()``), ``module``, ``scheme``.
    """

    def __init__(self, state, name: str, module: nn.Module):  # state: model._State
        self._s, self.name, self.module, self.scheme = state, name, module, state.scheme

    def _full(self, pname: str) -> str:
        return f"{self.name}.{pname}" if self.name else pname

    def _param(self, pname: str):
        p = getattr(self.module, pname, None)
        if p is None:
            return None, None
        full = self._full(pname)
        first = self._s.seen.get(id(p))
        if first is not None and first != full:
            return p, first  # tied: initialized where first seen
        self._s.seen[id(p)] = full
        return p, None

    def _record(self, name, p, shape, rule, params=None, role=None, why=None, bias=None):
        self._s.summary.append({"name": name, "type": type(self.module).__name__, "shape": shape,
                                "rule": rule, "params": params or {}, "bias": bias, "role": role,
                                "why": why})
        return self._s.summary[-1]

    def weight(self, pname: str = "weight", *, role: Optional[str] = None, transpose: bool = False,
               blocks: int = 1, block_roles=None, label: Optional[str] = None,
               why: Optional[str] = None) -> Optional[dict]:
        """Apply the scheme to weight ``pname`` (``(out, in)`` or ``(out, in, *kernel)``).

        role: ``"layer"``, ``"qkv"``, ``"up"``, ``"out"``, ``"residual_last"``, ``"classifier"``,
            ``"first"``, or None (residual_last / classifier / first when the module was chosen as
            such, else from the name: see ``zerofwht.init.residual.weight_role``).
        transpose: the weight is stored ``(in, out)``: the rule is applied to ``w.t()`` (a view).
        blocks: split the rows into this many equal blocks, each initialized as its own matrix
            (packed Q, K, V); ``block_roles`` names their roles (default: all ``role``).
        """
        p, tied = self._param(pname)
        if p is None:
            return None
        name = label or (self._full(pname) if pname != "weight" or not self.name else self.name)
        shape = tuple(p.shape[::-1] if transpose else p.shape)
        if tied is not None:
            return self._record(name, p, shape, f"tied to {tied}", why="tied parameter: "
                                "initialized once, where it first appears")
        if block_roles is None:
            role, why = self._s.role_of(self.name, role, why)
        if _is_meta(p):
            return self._s.meta(name, self._record(name, p, shape, "skipped (meta)", role=role))
        if shape[0] % blocks:
            raise ValueError(f"init_model_: {name} has {shape[0]} rows, not divisible into "
                             f"{blocks} blocks")
        rows = shape[0] // blocks
        local, off, _ = _local_view(p, transpose)
        rec = None
        for b in range(blocks):
            brole = block_roles[b] if block_roles else role
            rule, fn, params = self._s.weight_rule(brole, p.dim() > 2, self.name, b == 0)
            lo, hi = max(off[0], b * rows), min(off[0] + local.shape[0], (b + 1) * rows)
            if local.numel() == 0:  # an empty shard of an uneven split holds no block
                lo = hi
            if lo < hi:  # this shard holds rows [lo, hi) of the block
                part = local[lo - off[0]:hi - off[0]]
                fn(part, offset=[lo - b * rows] + off[1:], full_shape=(rows,) + shape[1:])
            elif self._s.draws_noise(brole):
                # a block this shard does not hold: fill one row of scratch so that the generator
                # advances exactly as on the shards that hold it (bitwise equal to unsharded)
                scratch = torch.empty((1,) + shape[1:], dtype=local.dtype, device=local.device)
                fn(scratch, offset=[0] * len(shape), full_shape=(rows,) + shape[1:])
            bname = name if blocks == 1 else f"{name}[{'qkv'[b] if blocks == 3 else b}]"
            bshape = shape if blocks == 1 else (rows,) + shape[1:]
            rec = self._record(bname, p, bshape, rule, params, brole, why)
        return rec

    def bias(self, pname: str = "bias", record: Optional[dict] = None) -> None:
        """Zero the bias ``pname`` (``"zero_weight_random_bias"``: draw it); noted in ``record``
        (the weight's summary record) or in a record of its own."""
        p, tied = self._param(pname)
        if p is None:
            return
        if tied is not None:
            what = f"tied to {tied}"
        elif _is_meta(p):
            what = "skipped (meta)"
        else:
            what = self._s.bias_fill(p)
        if record is not None:
            record["bias"] = what
        else:
            self._record(self._full(pname), p, tuple(p.shape), what)

    def fill(self, pname: str, value: float, why: str) -> Optional[dict]:
        """Set parameter ``pname`` to the constant ``value`` (norm weights)."""
        p, tied = self._param(pname)
        if p is None:
            return None
        name = self._full(pname)
        if tied is not None:
            return self._record(name, p, tuple(p.shape), f"tied to {tied}")
        if _is_meta(p):
            return self._s.meta(name, self._record(name, p, tuple(p.shape), "skipped (meta)"))
        _local_view(p)[0].fill_(value)
        return self._record(name, p, tuple(p.shape), "ones_" if value == 1 else f"constant {value:g}",
                            why=why)

    def keep(self, pname: str, why: str) -> Optional[dict]:
        """Leave parameter ``pname`` as it is, with the reason in the summary."""
        p, tied = self._param(pname)
        if p is None:
            return None
        return self._record(self._full(pname), p, tuple(p.shape),
                            f"tied to {tied}" if tied else "kept", why=why)


# ----------------------------------------------------------------------------------------------
# Built-in rules and the registry
# ----------------------------------------------------------------------------------------------
def _linear_rule(m, ctx):
    packed = isinstance(m, nn.Linear) and is_packed_qkv(ctx.name) and m.weight.shape[0] % 3 == 0
    n = ctx.weight("weight", blocks=3 if packed else 1, block_roles=("qkv",) * 3 if packed else None,
                   why="packed Q, K, V by name" if packed else None)
    ctx.bias("bias", n)


def _conv1d_hf_rule(m, ctx):
    # transformers' Conv1D stores its weight as (in, out): the rules see the transposed view
    packed = is_packed_qkv(ctx.name) and m.weight.shape[1] % 3 == 0
    n = ctx.weight("weight", transpose=True, blocks=3 if packed else 1,
                   block_roles=("qkv",) * 3 if packed else None,
                   why="packed Q, K, V by name" if packed else None)
    ctx.bias("bias", n)


def _mha_rule(m: nn.MultiheadAttention, ctx):
    if m.in_proj_weight is not None:
        n = ctx.weight("in_proj_weight", blocks=3, block_roles=("qkv",) * 3,
                       why="nn.MultiheadAttention packed in_proj_weight: blocks Q, K, V")
    else:  # kdim / vdim differ from embed_dim: three separate projections
        for p in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
            n = ctx.weight(p, role="qkv", why="nn.MultiheadAttention separate projection")
    ctx.bias("in_proj_bias", n)
    for p in ("bias_k", "bias_v"):
        ctx.bias(p)
    # out_proj is a child nn.Linear: handled by the Linear rule (role "out" from its name)


def _norm_rule(m, ctx):
    # Gemma-style RMSNorms scale by (1 + weight): their identity weight is 0
    one = 0.0 if any(c.startswith("Gemma") for c in ctx._s.mro_names(m)) else 1.0
    if isinstance(getattr(m, "weight", None), torch.Tensor):
        rec = ctx.fill("weight", one, "norm: identity scale")
        if rec is not None and getattr(m, "bias", None) is not None:
            ctx.bias("bias", rec)


def _embedding_rule(m, ctx):
    scheme = ctx._s.embedding
    if scheme is None:
        ctx.keep("weight", "embedding: ZerO / IDInit give no rule for a lookup table; left as the "
                           "model initialized it (embedding=<scheme> to apply one)")
        return
    ctx.weight("weight", role="layer", why=f"embedding={scheme!r}")


_RULES: dict = {}


def register_rule(module_type: type, fn: Callable[[nn.Module, RuleContext], None]) -> None:
    r"""Teach :func:`init_model_` a module type (a user's registration overrides a built-in one).

    ``fn(module, ctx) -> None`` is called once per module of that type (or a subclass), in module
    order, inside ``torch.no_grad()``. It initializes the module's OWN parameters (not its
    children's: those get their own rules) through ``ctx`` (:class:`RuleContext`):

    * ``ctx.weight("weight", role=None, transpose=False, blocks=1)``: the scheme's rule for a weight
      matrix ``(out, in)`` / conv weight (``transpose=True`` for one stored ``(in, out)``;
      ``blocks=3`` for packed Q, K, V); returns the summary record;
    * ``ctx.bias("bias", record)``: zeros (random under ``"zero_weight_random_bias"``);
    * ``ctx.fill("weight", 1.0, why)``: a constant (norm scales);
    * ``ctx.keep("weight", why)``: leave as is, with the reason in the summary.

    All of them work on DTensor shards (FSDP2) and handle tied and meta parameters. Example::

        def my_rule(module, ctx):
            rec = ctx.weight("kernel", transpose=True)
            ctx.bias("offset", rec)
        zerofwht.init.register_rule(MyDense, my_rule)
    """
    if not isinstance(module_type, type) or not issubclass(module_type, nn.Module):
        raise TypeError(f"register_rule: module_type must be an nn.Module subclass, got "
                        f"{module_type!r}")
    if not callable(fn):
        raise TypeError(f"register_rule: fn must be callable fn(module, ctx), got {fn!r}")
    _RULES[module_type] = fn


def _builtin(module_type, fn):
    _RULES.setdefault(module_type, fn)


for _t in (nn.Linear,) + _CONV:
    _builtin(_t, _linear_rule)
_builtin(nn.MultiheadAttention, _mha_rule)
_builtin(nn.Embedding, _embedding_rule)
for _t in (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
           getattr(nn, "RMSNorm", nn.LayerNorm)):
    _builtin(_t, _norm_rule)


def _find_rule(m: nn.Module):
    for cls in type(m).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    names = [c.__name__ for c in type(m).__mro__]
    if "Conv1D" in names and hasattr(m, "nf"):
        return _conv1d_hf_rule
    if any(_NORM_NAME.search(n) for n in names) and isinstance(getattr(m, "weight", None),
                                                                 torch.Tensor):
        return _norm_rule
    return None
