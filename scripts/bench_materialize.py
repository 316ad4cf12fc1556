"""Materialize a Llama-architecture model at real widths on two ranks (torch.distributed, gloo on
CPU here; NCCL on GPUs with --device cuda) and time three ways of getting initialized shards:

* ``zerofwht``: meta -> ``fully_shard`` -> ``to_empty`` -> ``init_model_`` (each rank writes only
  its local shards, no communication);
* ``own-init``: meta -> ``fully_shard`` -> ``to_empty`` -> the model's own default rule on the same
  local shards (HF Llama: Linear and Embedding ``normal_(0, initializer_range)``, RMSNorm ones);
* ``fill-ones``: the same shards filled with ``fill_(1.0)``: the bar for the write bandwidth;
* ``whole-then-shard``: every rank builds the whole model (transformers' own initialization), then
  ``fully_shard`` keeps its shards.

Per rank: seconds (build + shard + materialize + initialize, and the initialization alone), peak
resident memory (ru_maxrss of the rank's process, which includes the interpreter and torch: the
``baseline`` line is a rank that only imports and builds on meta), and GB/s written by the
initialization (bytes of the rank's local parameters / initialization seconds).

    nice python scripts/bench_materialize.py [--hidden 4096 --intermediate 11008 --heads 32
        --vocab 32000 --layers 2 --dtype bfloat16 --scheme zero --out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time

VARIANTS = ("baseline", "zerofwht", "own-init", "fill-ones", "whole-then-shard")


def worker():
    import torch
    import torch.distributed as dist
    import transformers
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from zerofwht import init

    a = json.loads(os.environ["BENCH_ARGS"])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dev = a["device"]
    backend = "nccl" if dev == "cuda" else "gloo"
    if dev == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=os.environ["INIT_METHOD"], rank=rank, world_size=world)
    mesh = init_device_mesh(dev, (world,))
    torch.set_default_dtype(getattr(torch, a["dtype"]))
    cfg = transformers.LlamaConfig(vocab_size=a["vocab"], hidden_size=a["hidden"],
                                   intermediate_size=a["intermediate"], num_hidden_layers=a["layers"],
                                   num_attention_heads=a["heads"], num_key_value_heads=a["heads"])

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()
        dist.barrier()

    def shard(m):
        for layer in m.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(m, mesh=mesh)

    variant = a["variant"]
    sync()
    t0 = time.perf_counter()
    t_init = 0.0
    if variant == "whole-then-shard":
        with torch.device(dev):
            m = transformers.LlamaForCausalLM(cfg)  # builds and initializes the whole model
        shard(m)
    else:
        with torch.device("meta"):
            m = transformers.LlamaForCausalLM(cfg)
        if variant != "baseline":
            shard(m)
            m.to_empty(device=dev)
            sync()
            t1 = time.perf_counter()
            with torch.no_grad():
                if variant == "zerofwht":
                    init.init_model_(m, a["scheme"], embedding=a["scheme"])
                elif variant == "fill-ones":  # the write-bandwidth bar: a plain fill of each shard
                    for p in m.parameters():
                        p._local_tensor.fill_(1.0)
                else:
                    std = cfg.initializer_range
                    for mod in m.modules():
                        if isinstance(mod, (torch.nn.Linear, torch.nn.Embedding)):
                            mod.weight._local_tensor.normal_(0.0, std)
                        elif type(mod).__name__.endswith("RMSNorm"):
                            mod.weight._local_tensor.fill_(1.0)
            sync()
            t_init = time.perf_counter() - t1
    sync()
    total = time.perf_counter() - t0
    local_bytes = 0
    if variant != "baseline":
        local_bytes = sum(p._local_tensor.numel() * p._local_tensor.element_size()
                          for p in m.parameters())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    if dev == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    n_params = sum(p.numel() for p in m.parameters())
    print("RESULT " + json.dumps({"variant": variant, "rank": rank, "total_s": total,
                                  "init_s": t_init, "peak_gib": peak, "local_gb": local_bytes / 1e9,
                                  "params": n_params}), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, variant):
    a = dict(vars(args), variant=variant)
    port = free_port()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs = []
    for rank in range(args.ranks):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(args.ranks), BENCH_ARGS=json.dumps(a),
                   INIT_METHOD=f"tcp://127.0.0.1:{port}", OMP_NUM_THREADS=str(args.threads),
                   PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    rows = []
    for p in procs:
        out, _ = p.communicate(timeout=900)
        got = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
        if p.returncode != 0 or not got:
            raise RuntimeError(f"{variant}: a rank failed (exit {p.returncode}):\n{out[-3000:]}")
        rows += got
    return sorted(rows, key=lambda r: r["rank"])


def main():
    if "--worker" in sys.argv:
        return worker()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--intermediate", type=int, default=11008)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--scheme", default="zero")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    results = []
    print(f"Llama hidden {args.hidden}, intermediate {args.intermediate}, heads {args.heads}, vocab "
          f"{args.vocab}, {args.layers} layers, {args.dtype}, {args.ranks} ranks ({args.device}, "
          f"{args.threads} thread(s) each)")
    print(f"{'variant':18s} {'rank':>4s} {'total s':>8s} {'init s':>7s} {'peak GiB':>9s} "
          f"{'local GB':>9s} {'GB/s':>6s}")
    for v in args.variants.split(","):
        for r in launch(args, v):
            gbs = r["local_gb"] / r["init_s"] if r["init_s"] else float("nan")
            r["gb_per_s"] = gbs
            results.append(r)
            print(f"{v:18s} {r['rank']:4d} {r['total_s']:8.2f} {r['init_s']:7.2f} "
                  f"{r['peak_gib']:9.2f} {r['local_gb']:9.3f} {gbs:6.2f}", flush=True)
    params = max(r["params"] for r in results)
    print(f"model: {params / 1e9:.3f} G parameters (counted on the shards' logical shapes)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
