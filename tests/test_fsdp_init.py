"""init_model_ under FSDP2 for real: two processes on this machine, torch.distributed over gloo.

Each model is built on the meta device, sharded with ``fully_shard`` (per block, then the root),
materialized with ``to_empty(device="cpu")`` and initialized by ``init_model_``, which must write
only each rank's local shards: no collective runs (a dispatch mode watches every op, and the
collectives of torch.distributed are replaced by ones that fail) and no tensor larger than the
largest local shard is created. Afterwards (outside the watched region) every parameter's
``full_tensor()`` must equal, bit for bit, the same scheme applied to the same model built whole
on one process. Models: a Hugging Face Llama-architecture model from a tiny config (vocabulary 65:
an uneven split), GPT-2 (transformers' Conv1D, packed Q/K/V, tied head) and
``nn.TransformerEncoder``.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

WORKER = textwrap.dedent(r'''
    import os, sys, warnings
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor
    from torch.utils._python_dispatch import TorchDispatchMode
    from zerofwht import init

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", init_method=os.environ["INIT_METHOD"], rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    which = os.environ["MODELS"].split(",")

    class Watch(TorchDispatchMode):
        """Records collectives and the largest tensor any op returns."""
        def __init__(self):
            super().__init__()
            self.collectives, self.largest = [], 0
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if "c10d" in func.namespace:
                self.collectives.append(str(func))
            out = func(*args, **(kwargs or {}))
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor):
                    self.largest = max(self.largest, t.numel())
            return out

    def forbid(*a, **k):
        raise AssertionError("a collective ran inside init_model_")

    def build(name, meta):
        ctx = torch.device("meta") if meta else torch.device("cpu")
        with ctx:
            if name == "llama":
                import transformers
                cfg = transformers.LlamaConfig(vocab_size=65, hidden_size=32, intermediate_size=48,
                                               num_hidden_layers=2, num_attention_heads=4,
                                               num_key_value_heads=2)
                m = transformers.LlamaForCausalLM(cfg)
                blocks = list(m.model.layers)
            elif name == "gpt2":  # Conv1D weights stored (in, out), packed c_attn, tied lm_head
                import transformers
                cfg = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2,
                                              n_positions=32, bos_token_id=0, eos_token_id=0)
                m = transformers.GPT2LMHeadModel(cfg)
                blocks = list(m.transformer.h)
            else:
                layer = nn.TransformerEncoderLayer(24, 4, 40, batch_first=True)
                m = nn.Sequential(nn.Linear(10, 24), nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
                                  nn.LayerNorm(24), nn.Linear(24, 7))
                blocks = list(m[1].layers)
        return m, blocks

    fails, checks = [], 0
    for name in which:
        schemes = (("zero", {}), ("idinit", {}), ("idinit", {"noise_std": 0.1}),
                   ("zero_weight_random_bias", {}))
        for scheme, kw in (schemes[1:3] if name == "gpt2" else schemes):
            kw = dict(kw, embedding=scheme) if name in ("llama", "gpt2") else dict(kw)
            ref, _ = build(name, meta=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref_summary = init.init_model_(ref, scheme, generator=torch.Generator().manual_seed(3), **kw)
            m, blocks = build(name, meta=True)
            for b in blocks:
                fully_shard(b, mesh=mesh)
            fully_shard(m, mesh=mesh)
            m.to_empty(device="cpu")
            for p in m.parameters():
                p._local_tensor.fill_(float("nan"))  # poison: anything unwritten shows
            largest_shard = max(p._local_tensor.numel() for p in m.parameters())
            saved = {f: getattr(dist, f) for f in ("all_gather", "all_gather_into_tensor", "all_reduce",
                                                   "broadcast", "reduce_scatter_tensor", "all_to_all")}
            for f in saved:
                setattr(dist, f, forbid)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with Watch() as w:
                        summary = init.init_model_(m, scheme, generator=torch.Generator().manual_seed(3), **kw)
            finally:
                for f, fn in saved.items():
                    setattr(dist, f, fn)
            checks += 1
            if w.collectives:
                fails.append(f"{name} {scheme}: collectives {w.collectives[:3]}")
            if w.largest > largest_shard:
                fails.append(f"{name} {scheme}: a tensor of {w.largest} elements (largest shard {largest_shard})")
            if [(r["name"], r["rule"]) for r in summary] != [(r["name"], r["rule"]) for r in ref_summary]:
                fails.append(f"{name} {scheme}: summaries differ")
            ref_params = dict(ref.named_parameters())
            for pname, p in m.named_parameters():
                checks += 1
                assert isinstance(p, DTensor)
                full = p.full_tensor()
                want = ref_params[pname].detach()
                if not torch.equal(full.view(torch.int32), want.view(torch.int32)):
                    fails.append(f"{name} {scheme} {kw}: {pname} {tuple(p.shape)} placements {p.placements}")
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {rank}: {checks} checks, {len(fails)} failures")
    for f in fails[:20]:
        print("FAIL", f)
    sys.stdout.flush()
    os._exit(1 if fails else 0)  # skip gloo's teardown (see test_init_dtensor.py)
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(tmp_path, models: str):
    script = tmp_path / "fsdp_worker.py"
    script.write_text(WORKER)
    port = free_port()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", INIT_METHOD=f"tcp://127.0.0.1:{port}",
                   MODELS=models, OMP_NUM_THREADS="1",
                   PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outs.append(out)
    report = "\n".join(f"--- rank {i} (exit {p.returncode}) ---\n{o[-4000:]}"
                       for i, (p, o) in enumerate(zip(procs, outs)))
    assert all(p.returncode == 0 for p in procs), report
    assert all(" 0 failures" in o for o in outs), report


def test_fsdp2_transformer_encoder(tmp_path):
    run_two_ranks(tmp_path, "encoder")


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                    reason="transformers not installed (optional; scripts/setup_env.sh installs it)")
def test_fsdp2_hf_llama_and_gpt2(tmp_path):
    run_two_ranks(tmp_path, "llama,gpt2")
