r"""init_model_: a scheme applied to every module of a model that has a rule: Linear / Conv, the
packed attention of nn.MultiheadAttention, transformers' Conv1D, norms, embeddings, and any module
type a user registers with :func:`register_rule`. Weights are written through the initializers'
``offset=`` / ``full_shape=`` arguments on each parameter's local tensor, so a DTensor (FSDP2) is
filled shard by shard with no communication and the same bits as an unsharded model."""
from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
from torch import nn

from .fill import _real
from .initializers import idi_, idic_, idiz_, idizc_, partial_identity_, zero_init_
from .residual import find_residual_ends, is_packed_qkv, weight_role
from .rules import (RuleContext, _embedding_rule, _find_rule, _local_view, _mha_rule,  # noqa: F401
                    _norm_rule, register_rule)

SCHEMES = ("zero", "idinit", "partial_identity", "zero_weight_random_bias")


# ----------------------------------------------------------------------------------------------
# The scheme: which initializer each role gets
# ----------------------------------------------------------------------------------------------
class _State:
    def __init__(self, scheme, opts, residual, classifier, first, transformer):
        self.scheme, self.o, self.residual, self.classifier = scheme, opts, residual, classifier
        self.first, self.transformer = first, transformer
        self.embedding = opts["embedding"]
        self.summary, self.seen, self.meta_names = [], {}, []

    @staticmethod
    def mro_names(m):
        return [c.__name__ for c in type(m).__mro__]

    def meta(self, name, rec):
        self.meta_names.append(name)
        return rec

    def role_of(self, modname, role, why):
        if role is not None:
            return role, why
        if modname in self.residual:
            return "residual_last", self.residual[modname]
        if modname in self.classifier:
            return "classifier", self.classifier[modname]
        if modname == self.first:
            return "first", "first weight layer in module order"
        r = weight_role(modname)
        return r if r is not None else ("layer", why)

    def weight_rule(self, role, is_conv, modname, first_block):
        """(rule name, fn(w, offset=, full_shape=), params) for a weight of this role."""
        o, s = self.o, self.scheme
        end = role in ("residual_last", "out") or (role == "classifier" and s == "idinit")
        if s == "zero_weight_random_bias" or (s == "zero" and (
                role in ("residual_last", "out") or (role == "classifier" and self.transformer))):
            return "zeros_", lambda w, **k: w.zero_(), {}
        if s == "zero":
            return "zero_init_", zero_init_, {}
        if s == "partial_identity":
            return "partial_identity_", partial_identity_, {}
        if end:  # idinit: IDIZ_eps on W^O, residual-branch ends and the classifier
            params = {"eps": o["eps"]}
            if role == "classifier":
                params["classifier"] = True
            f = idizc_ if is_conv else idiz_
            return f.__name__, lambda w, **k: f(w, o["eps"], **k), params
        tau = 1.0 if role == "qkv" else (o["first_tau"] if role == "first" else o["tau"])
        if is_conv:
            return "idic_", lambda w, **k: idic_(w, tau, **k), {"tau": tau}
        params = {"tau": tau, "noise_std": o["noise_std"]} if o["noise_std"] else {"tau": tau}
        return "idi_", lambda w, **k: idi_(w, tau, o["noise_std"], o["generator"], **k), params

    def draws_noise(self, role):
        """Whether the rule of this role draws from the generator (loosened IDI)."""
        return self.scheme == "idinit" and bool(self.o["noise_std"]) and role not in (
            "residual_last", "out", "classifier")

    def bias_fill(self, p):
        o = self.o
        if self.scheme != "zero_weight_random_bias":
            _local_view(p)[0].zero_()
            return "zeros"
        # drawn for the whole (1-D, small) bias, so each shard keeps its slice of the same draw
        full = torch.empty(tuple(p.shape), dtype=p.dtype,
                           device=o["generator"].device if o["generator"] is not None else "cpu")
        if o["bias_init"] == "normal":
            full.normal_(0.0, o["bias_std"], generator=o["generator"])
            what = f"normal(0, {o['bias_std']:g}^2)"
        else:
            full.uniform_(0.0, o["bias_a"], generator=o["generator"])
            what = f"uniform[0, {o['bias_a']:g})"
        local, off, _ = _local_view(p)
        idx = tuple(slice(a, a + n) for a, n in zip(off, local.shape))
        local.copy_(full[idx].to(local.device))
        return what


def _resolve(model, which, what, named) -> dict:
    if which is None:
        return {}
    if isinstance(which, (str, nn.Module)):
        which = (which,)
    by_module = {id(m): n for n, m in named.items()}
    out = {}
    for item in which:
        if isinstance(item, nn.Module):
            if id(item) not in by_module:
                raise ValueError(f"{what}: module {type(item).__name__} is not a Linear/Conv layer of "
                                 f"the model (or a module with a registered rule)")
            out[by_module[id(item)]] = f"{what}= (given)"
        elif isinstance(item, str):
            if item not in named:
                raise ValueError(f"{what}: {item!r} is not the name of a Linear/Conv layer of the "
                                 f"model (or a module with a registered rule); layers: {sorted(named)}")
            out[item] = f"{what}= (given)"
        else:
            raise TypeError(f"{what} must hold layer names or modules, got {type(item).__name__}")
    return out


def init_model_(model: nn.Module, scheme: str, *, residual_last="auto", classifier="auto",
                generator: Optional[torch.Generator] = None, tau: float = 1.0,
                first_tau: Optional[float] = math.sqrt(2.0), eps: float = 1e-6,
                noise_std: float = 0.0, bias_init: str = "normal", bias_std: float = 1e-2,
                bias_a: float = 1e-2, embedding: Optional[str] = None,
                backend: Optional[str] = None) -> list[dict]:
    r"""Initialize a model in place with a scheme; every module with a rule, in module order.

    Rules (see docs/init_models.md for the layer -> rule tables): ``nn.Linear``, ``nn.Conv{1,2,3}d``,
    ``nn.MultiheadAttention`` (packed ``in_proj_weight`` as blocks Q, K, V, or the separate
    ``q/k/v_proj_weight``), transformers' ``Conv1D`` (weight stored ``(in, out)``: the rule is
    applied to the transposed view in place), norms (LayerNorm, RMSNorm, BatchNorm, GroupNorm and
    classes named ``*RMSNorm`` / ``*LayerNorm``: weight 1, bias 0), ``nn.Embedding`` (kept unless
    ``embedding=`` names a scheme), and types added with :func:`register_rule`. A parameter
    shared by several modules (tied) is initialized once, where it first appears.

    Schemes (per weight role; "end" = a residual-branch end or an attention output W^O):

    * ``"zero"`` (ZerO): :func:`zero_init_` (identity / ``I*`` when the width is kept or reduced,
      ``H I*`` when it grows); ends zero; the classifier zero in a model with transformer blocks.
    * ``"idinit"`` (IDInit): :func:`idi_` / :func:`idic_` with ``tau``; ``first_tau`` (default
      sqrt(2), for ReLU nets; None = ``tau``) on the first weight layer unless it is an attention
      projection; attention Q, K, V: IDI_1; ends and the classifier: :func:`idiz_` /
      :func:`idizc_` with ``eps``. ``noise_std`` / ``generator`` loosen the IDI layers.
    * ``"partial_identity"``: :func:`partial_identity_` on every weight.
    * ``"zero_weight_random_bias"``: weights 0, biases from ``N(0, bias_std^2)`` or
      ``U[0, bias_a)`` (``bias_init``), drawn from ``generator``.

    Biases are zeroed unless the scheme draws them.

    Args:
        model: any ``nn.Module``; its parameters may be DTensors (each rank writes its own shard,
            no communication) or on meta (skipped with a warning: ``to_empty`` first).
        residual_last: the layers that end each residual branch, by name or module; ``"auto"``
            (default): found for nn.TransformerEncoder/DecoderLayer, Llama-family, GPT-2, BERT and
            torchvision ResNet blocks (``zerofwht.init.residual.RESIDUAL_RULES``); a warning naming
            this option when none is found and the scheme uses them. ``()`` or None: none.
        classifier: the final classifier by name or module; ``"auto"``: the last ``nn.Linear``.
        embedding: None (keep embeddings) or a scheme name applied to embedding tables.
        backend: the fill backend (see :func:`partial_identity_`).

    Returns:
        The summary, one record per initialized parameter (or Q/K/V block), in module order:
        ``{"name", "type", "shape", "rule", "params", "bias", "role", "why"}``; ``rule`` names the
        initializer, ``"kept"``, ``"tied to <name>"`` or ``"skipped (meta)"``; ``why`` says which
        rule chose the role (e.g. the residual rule that matched).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got scheme={scheme!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if bias_init not in ("normal", "uniform"):
        raise ValueError(f'bias_init must be "normal" or "uniform", got bias_init={bias_init!r}')
    if embedding is not None and embedding not in SCHEMES:
        raise ValueError(f"embedding must be None or one of {SCHEMES}, got embedding={embedding!r}")
    tau = _real(tau, "tau")
    opts = dict(tau=tau, eps=_real(eps, "eps", minimum=0.0), generator=generator,
                bias_std=_real(bias_std, "bias_std", minimum=0.0), bias_init=bias_init,
                bias_a=_real(bias_a, "bias_a", minimum=0.0), embedding=embedding,
                noise_std=_real(noise_std, "noise_std", minimum=0.0),
                first_tau=tau if first_tau is None else _real(first_tau, "first_tau"))
    rules = {n: (m, _find_rule(m)) for n, m in model.named_modules()}
    named = {n: m for n, (m, r) in rules.items()
             if r is not None and r not in (_norm_rule, _embedding_rule, _mha_rule)}
    auto = find_residual_ends(model)
    if isinstance(residual_last, str) and residual_last == "auto":
        residual = {n: f"residual_last='auto': {why}" for n, why in auto.items() if n in named}
        if not residual and scheme in ("zero", "idinit"):
            warnings.warn(f"zerofwht.init.init_model_: residual_last='auto' found no residual block "
                          f"it knows in {type(model).__name__}; no layer is treated as the end of a "
                          f"residual branch. Name them with residual_last=[...] (or pass "
                          f"residual_last=() if the model has none).", UserWarning, stacklevel=2)
    else:
        residual = _resolve(model, residual_last, "residual_last", named)
    if classifier == "auto":
        linears = [n for n, m in named.items() if isinstance(m, nn.Linear)]
        cls = {linears[-1]: "classifier='auto': last nn.Linear"} if linears else {}
    else:
        cls = _resolve(model, classifier, "classifier", named)
    first = next((n for n, (m, r) in rules.items() if r is not None and r not in (
        _norm_rule, _embedding_rule)), None)
    if first is not None and (rules[first][1] is _mha_rule or weight_role(first) is not None
                              or is_packed_qkv(first)):
        first = None  # an attention projection keeps its own rule (IDI_1)
    state = _State(scheme, opts, residual, cls, first, transformer=bool(auto))
    with torch.no_grad():
        for name, (m, rule) in rules.items():
            if rule is not None:
                rule(m, RuleContext(state, name, m))
            else:
                own = [p for p, t in m.named_parameters(recurse=False)]
                ctx = RuleContext(state, name, m)
                for p in own:
                    ctx.keep(p, f"no rule for {type(m).__name__}: left as it is (add one with "
                                f"zerofwht.init.register_rule)")
    if state.meta_names:
        warnings.warn(f"zerofwht.init.init_model_: {len(state.meta_names)} parameter(s) are on the "
                      f"meta device, e.g. {state.meta_names[0]!r}; skipped (materialize with "
                      f"model.to_empty(device=...) first)", UserWarning, stacklevel=2)
    return state.summary
