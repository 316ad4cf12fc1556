"""Which layers of a model end a residual branch (``init_model_(..., residual_last="auto")``) and
which role each weight plays in a transformer block (attention Q/K/V, attention output, MLP
up-projection). Recognition is by module type where the type ships with PyTorch, and by class name
and attribute layout for Hugging Face and torchvision modules, so that neither package is imported
here (both are optional)."""
from __future__ import annotations

import re
from typing import Callable, Optional

from torch import nn


def _get(module: nn.Module, path: str) -> Optional[nn.Module]:
    for part in path.split("."):
        module = getattr(module, part, None)
        if not isinstance(module, nn.Module):
            return None
    return module


def _class_names(module: nn.Module) -> list:
    # the whole MRO: fully_shard() swaps a module's class for an "FSDP<Name>" subclass
    return [c.__name__ for c in type(module).__mro__]


def _has(*paths: str) -> Callable[[nn.Module], bool]:
    return lambda m: all(_get(m, p) is not None for p in paths)


def _resnet_block(m: nn.Module) -> bool:
    names = _class_names(m)
    return ("BasicBlock" in names or "Bottleneck" in names) and _get(m, "conv2") is not None \
        and _get(m, "bn1") is not None


def _resnet_ends(m: nn.Module) -> tuple:
    return ("conv3",) if _get(m, "conv3") is not None else ("conv2",)


# (rule name, predicate on a module, the residual-branch ends as paths below it). First match wins;
# a matched block is not searched further. The last conv (not its BN) of a torchvision block is
# chosen because the schemes' residual rules act on weight matrices; BN stays weight 1, bias 0.
RESIDUAL_RULES: list = [
    ("nn.TransformerEncoderLayer", lambda m: isinstance(m, nn.TransformerEncoderLayer),
     lambda m: ("self_attn.out_proj", "linear2")),
    ("nn.TransformerDecoderLayer", lambda m: isinstance(m, nn.TransformerDecoderLayer),
     lambda m: ("self_attn.out_proj", "multihead_attn.out_proj", "linear2")),
    ("Llama-family decoder layer (self_attn.o_proj, mlp.down_proj)",
     _has("self_attn.o_proj", "mlp.down_proj"), lambda m: ("self_attn.o_proj", "mlp.down_proj")),
    ("GPT-2 block (attn.c_proj, mlp.c_proj)", _has("attn.c_proj", "mlp.c_proj"),
     lambda m: ("attn.c_proj", "mlp.c_proj")),
    ("BERT layer (attention.output.dense, output.dense)",
     _has("attention.output.dense", "output.dense", "intermediate"),
     lambda m: ("attention.output.dense", "output.dense")),
    ("torchvision ResNet block (last conv)", _resnet_block, _resnet_ends),
]


def find_residual_ends(model: nn.Module) -> dict:
    """``{layer name: "rule name"}`` for every residual-branch end found by ``RESIDUAL_RULES``."""
    found, claimed = {}, []
    for name, m in model.named_modules():
        if any(name == c or name.startswith(c + ".") for c in claimed if c):
            continue
        for rule_name, match, ends in RESIDUAL_RULES:
            if match(m):
                for e in ends(m):
                    if _get(m, e) is not None:
                        found[f"{name}.{e}" if name else e] = rule_name
                claimed.append(name)
                break
    return found


_QKV = re.compile(r"(^|\.)(q|k|v|query|key|value|q_proj|k_proj|v_proj|wq|wk|wv)$")
_OUT = re.compile(r"(^|\.)(out_proj|o_proj|wo|attn\.c_proj|attention\.output\.dense)$")
_UP = re.compile(r"(^|\.)(up_proj|gate_proj|fc1|c_fc|w1|w3|linear1|intermediate\.dense)$")
_PACKED_QKV = re.compile(r"(^|\.)(c_attn|qkv|qkv_proj|Wqkv|query_key_value)$")


def weight_role(name: str) -> Optional[tuple]:
    """``(role, why)`` of a weight layer from its name, or None: ``"qkv"`` (attention Q, K, V),
    ``"out"`` (attention output W^O), ``"up"`` (MLP up / gate projection)."""
    for role, pat in (("qkv", _QKV), ("out", _OUT), ("up", _UP)):
        if pat.search(name):
            return role, f"name matches {pat.pattern}"
    return None


def is_packed_qkv(name: str) -> bool:
    return bool(_PACKED_QKV.search(name))
