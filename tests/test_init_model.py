"""init_model_ on transformers: nn.MultiheadAttention (packed and separate projections),
transformers' Conv1D, norms, embeddings, tied parameters, register_rule, residual_last="auto",
the "zero" and "idinit" transformer recipes. Expected weights come from the dense references in
zerofwht.reference; parameters are poisoned with NaN first so that anything left unwritten shows.
"""
from __future__ import annotations

import math
import re
import warnings

import pytest
import torch
from torch import nn

from zerofwht import init, reference


def ref(rule, shape, **p):
    out, inp = shape
    if rule == "zero":
        return reference.zero_init_matrix(out, inp).to(torch.float32)
    if rule == "idi":
        return reference.idi_matrix(out, inp, p.get("tau", 1.0)).to(torch.float32)
    if rule == "idiz":
        return reference.idiz_matrix(out, inp, p.get("eps", 1e-6)).to(torch.float32)
    if rule == "zeros":
        return torch.zeros(shape)
    raise AssertionError(rule)


def poison(model):
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    return model


def check(w, expected, what):
    w = w.detach()
    assert w.shape == expected.shape, what
    assert torch.equal(w, expected.to(w.dtype)), f"{what}: max diff {(w - expected).abs().max()}"


def by_name(summary):
    return {r["name"]: r for r in summary}


# ---------------------------------------------------------------------------------------------
# nn.MultiheadAttention and nn.TransformerEncoderLayer / DecoderLayer
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["zero", "idinit"])
def test_transformer_encoder_layer(scheme):
    d, ff = 16, 40
    layer = poison(nn.TransformerEncoderLayer(d, 4, ff, batch_first=True))
    s = by_name(init.init_model_(layer, scheme))
    q = layer.self_attn.in_proj_weight
    for b, tag in enumerate("qkv"):  # three (d, d) blocks: Q, K, V each its own identity
        rec = s[f"self_attn.in_proj_weight[{tag}]"]
        assert rec["role"] == "qkv" and rec["shape"] == (d, d)
        check(q[b * d:(b + 1) * d], ref("zero" if scheme == "zero" else "idi", (d, d)), tag)
    assert torch.count_nonzero(layer.self_attn.in_proj_bias) == 0
    end = "zeros" if scheme == "zero" else "idiz"
    check(layer.self_attn.out_proj.weight, ref(end, (d, d)), "out_proj")
    check(layer.linear2.weight, ref(end, (d, ff)), "linear2")
    check(layer.linear1.weight, ref("zero" if scheme == "zero" else "idi", (ff, d)), "linear1")
    for n in ("norm1", "norm2"):
        assert torch.equal(getattr(layer, n).weight, torch.ones(d))
        assert torch.equal(getattr(layer, n).bias, torch.zeros(d))
        assert s[f"{n}.weight"]["rule"] == "ones_" and s[f"{n}.weight"]["bias"] == "zeros"
    assert "nn.TransformerEncoderLayer" in s["linear2"]["why"]
    assert "nn.TransformerEncoderLayer" in s["self_attn.out_proj"]["why"]
    assert not any(torch.isnan(p).any() for p in layer.parameters())


def test_decoder_layer_and_separate_kv_projections():
    dec = poison(nn.TransformerDecoderLayer(16, 2, 32))
    s = init.init_model_(dec, "idinit")
    ends = {r["name"] for r in s if r["role"] == "residual_last"}
    assert ends == {"self_attn.out_proj", "multihead_attn.out_proj", "linear2"}
    mha = poison(nn.MultiheadAttention(8, 2, kdim=12, vdim=6))
    assert mha.in_proj_weight is None
    s = by_name(init.init_model_(mha, "idinit", residual_last=()))
    check(mha.q_proj_weight, ref("idi", (8, 8)), "q")
    check(mha.k_proj_weight, ref("idi", (8, 12)), "k")
    check(mha.v_proj_weight, ref("idi", (8, 6)), "v")
    assert s["k_proj_weight"]["role"] == "qkv"
    check(mha.out_proj.weight, ref("idiz", (8, 8)), "out_proj: W^O gets IDIZ")


# ---------------------------------------------------------------------------------------------
# Conv1D (weight stored (in, out)), norms, embeddings, tied parameters, register_rule
# ---------------------------------------------------------------------------------------------
class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D's layout (used when transformers is absent)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.empty(nf))


def conv1d_classes():
    out = [Conv1D]
    try:
        from transformers.pytorch_utils import Conv1D as HF
        out.append(HF)
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("cls", conv1d_classes(), ids=lambda c: c.__module__.split(".")[0])
def test_conv1d_transposed_in_place(cls):
    m = nn.Module()
    m.c_fc = poison(cls(20, 6))   # in 6 -> out 20 (width grows: Hadamard)
    m.c_attn = poison(cls(18, 6))  # packed Q, K, V
    ptr = m.c_fc.weight.data_ptr()
    s = by_name(init.init_model_(m, "zero", residual_last=(), classifier=None))
    assert m.c_fc.weight.data_ptr() == ptr and m.c_fc.weight.shape == (6, 20)
    check(m.c_fc.weight.t(), ref("zero", (20, 6)), "c_fc (transposed view)")
    assert s["c_fc"]["shape"] == (20, 6) and s["c_fc"]["role"] == "up"
    for b, tag in enumerate("qkv"):
        check(m.c_attn.weight.t()[b * 6:(b + 1) * 6], torch.eye(6), f"c_attn {tag}")
        assert s[f"c_attn[{tag}]"]["role"] == "qkv"
    assert torch.count_nonzero(m.c_fc.bias) == 0


class LlamaLikeRMSNorm(nn.Module):  # weight only, no bias, recognized by its class name
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d))


class GemmaRMSNorm(nn.Module):  # scales by (1 + weight): identity is weight 0
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d))


def test_norms():
    m = nn.Sequential(nn.LayerNorm(5), nn.BatchNorm2d(3), nn.GroupNorm(2, 4), LlamaLikeRMSNorm(6),
                      GemmaRMSNorm(3))
    if hasattr(nn, "RMSNorm"):
        m.append(nn.RMSNorm(7))
    poison(m)
    s = init.init_model_(m, "idinit", residual_last=())
    for i, mod in enumerate(m):
        want = 0.0 if isinstance(mod, GemmaRMSNorm) else 1.0
        assert torch.equal(mod.weight, torch.full_like(mod.weight, want)), type(mod).__name__
        if getattr(mod, "bias", None) is not None:
            assert torch.count_nonzero(mod.bias) == 0
    assert {r["rule"] for r in s} == {"ones_", "constant 0"}


def test_embeddings_kept_unless_asked_and_tied_once():
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(40, 8)
            self.body = nn.Linear(8, 8)
            self.head = nn.Linear(8, 40, bias=False)
            self.head.weight = self.emb.weight  # tied

    lm = LM()
    before = lm.emb.weight.detach().clone()
    s = init.init_model_(lm, "zero", residual_last=())
    assert torch.equal(lm.emb.weight, before)
    names = [r["name"] for r in s]
    assert names.count("emb.weight") == 1 and names.count("head") == 1
    rec = by_name(s)
    assert rec["emb.weight"]["rule"] == "kept" and "embedding" in rec["emb.weight"]["why"]
    assert rec["head"]["rule"] == "tied to emb.weight"
    s = by_name(init.init_model_(lm, "zero", residual_last=(), embedding="zero"))
    check(lm.emb.weight, ref("zero", (40, 8)), "embedding='zero'")
    assert s["head"]["rule"] == "tied to emb.weight"  # initialized once, as the embedding
    with pytest.raises(ValueError, match=r"embedding must be None or one of"):
        init.init_model_(lm, "zero", embedding="normal")


def test_register_rule():
    class Dense(nn.Module):  # a user's layer: weight stored (in, out) under another name
        def __init__(self, i, o):
            super().__init__()
            self.kernel = nn.Parameter(torch.full((i, o), float("nan")))
            self.offset = nn.Parameter(torch.full((o,), float("nan")))

    def rule(module, ctx):
        rec = ctx.weight("kernel", transpose=True)
        ctx.bias("offset", rec)

    m = nn.Sequential(Dense(4, 8), nn.Linear(8, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = init.init_model_(m, "idinit", residual_last=())
        assert s[0]["rule"] == "kept" and "register_rule" in s[0]["why"]
        init.register_rule(Dense, rule)
        s = by_name(init.init_model_(m, "idinit", residual_last=()))
    check(m[0].kernel.t(), ref("idi", (8, 4), tau=math.sqrt(2.0)), "first layer: first_tau")
    assert s["0.kernel"]["bias"] == "zeros" and torch.count_nonzero(m[0].offset) == 0
    with pytest.raises(TypeError, match="module_type must be an nn.Module subclass"):
        init.register_rule(int, rule)
    with pytest.raises(TypeError, match="fn must be callable"):
        init.register_rule(Dense, 3)


# ---------------------------------------------------------------------------------------------
# residual_last="auto"
# ---------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):  # torchvision.models.resnet layout (torchvision is not required)
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)


class Bottleneck(BasicBlock):
    def __init__(self, c):
        super().__init__(c)
        self.conv3, self.bn3 = nn.Conv2d(c, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c)


def test_residual_auto_resnet_blocks_and_unknown_warns():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), BasicBlock(4), Bottleneck(4), nn.Linear(16, 2))
    s = init.init_model_(net, "idinit")
    ends = {r["name"]: r["why"] for r in s if r["role"] == "residual_last"}
    assert set(ends) == {"1.conv2", "2.conv3"}
    assert all("torchvision ResNet block" in w for w in ends.values())
    assert by_name(s)["1.conv2"]["rule"] == "idizc_"
    plain = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.warns(UserWarning, match=r"residual_last='auto' found no residual block"):
        init.init_model_(plain, "idinit")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no guess needed: no warning
        init.init_model_(plain, "idinit", residual_last=())
        init.init_model_(plain, "partial_identity")


# ---------------------------------------------------------------------------------------------
# Hugging Face models from small configs (no download)
# ---------------------------------------------------------------------------------------------
transformers = pytest.importorskip("transformers", reason="transformers not installed (optional; "
                                   "scripts/setup_env.sh installs it)")


def tiny_llama():
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    return transformers.LlamaForCausalLM(cfg)


@pytest.mark.parametrize("scheme", ["zero", "idinit"])
def test_llama_recipe(scheme):
    m = poison(tiny_llama())
    s = by_name(init.init_model_(m, scheme))
    emb = m.model.embed_tokens.weight
    assert torch.isnan(emb).all() and s["model.embed_tokens.weight"]["rule"] == "kept"
    for i, layer in enumerate(m.model.layers):
        a, f = layer.self_attn, layer.mlp
        keep = "zero" if scheme == "zero" else "idi"
        end = "zeros" if scheme == "zero" else "idiz"
        check(a.q_proj.weight, ref(keep, (32, 32)), "q")
        check(a.k_proj.weight, ref(keep, (16, 32)), "k (grouped-query: 2 kv heads)")
        check(a.v_proj.weight, ref(keep, (16, 32)), "v")
        check(f.gate_proj.weight, ref(keep, (48, 32)), "gate")
        check(f.up_proj.weight, ref(keep, (48, 32)), "up")
        check(a.o_proj.weight, ref(end, (32, 32)), "o")
        check(f.down_proj.weight, ref(end, (32, 48)), "down")
        assert re.search("Llama-family", s[f"model.layers.{i}.mlp.down_proj"]["why"])
        assert torch.equal(layer.input_layernorm.weight, torch.ones(32))
    check(m.lm_head.weight, ref("zeros" if scheme == "zero" else "idiz", (64, 32)), "head")
    assert s["lm_head"]["role"] == "classifier"


def test_gpt2_and_bert_residual_ends():
    g = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=32, bos_token_id=0, eos_token_id=0))
    s = init.init_model_(g, "idinit")
    ends = sorted(r["name"] for r in s if r["role"] == "residual_last")
    assert ends == [f"transformer.h.{i}.{p}.c_proj" for i in range(2) for p in ("attn", "mlp")]
    rec = by_name(s)
    assert rec["lm_head"]["rule"] == "tied to transformer.wte.weight"
    check(g.transformer.h[0].attn.c_attn.weight.t()[16:32], torch.eye(16), "c_attn K")
    check(g.transformer.h[0].mlp.c_proj.weight.t(), ref("idiz", (16, 64)), "mlp.c_proj")
    b = transformers.BertModel(transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    s = init.init_model_(b, "zero")
    ends = sorted(r["name"] for r in s if r["role"] == "residual_last")
    assert ends == ["encoder.layer.0.attention.output.dense", "encoder.layer.0.output.dense"]
    assert torch.count_nonzero(b.encoder.layer[0].output.dense.weight) == 0
    check(b.encoder.layer[0].attention.self.query.weight, torch.eye(16), "query")
