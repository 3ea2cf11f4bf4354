"""Token budgets (textmtl.data.batching) against fixed batch sizes, on the real GoEmotions and AG News training texts
and the model `make train` trains (quick.yaml's warm start from all-MiniLM-L6-v2): padding share, examples per
training step, seconds per step (forward + backward + AdamW, the Trainer's loss) and examples per second.

    python -m bench.batching                # quick.yaml's batch sizes and budgets, 6 timed steps each
    python -m bench.batching --steps 10
"""
from __future__ import annotations

import sys, time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1])); __package__ = "bench"

import numpy as np
import torch

from .common import ROOT, median


def padding_share(batches, lengths) -> float:
    "The share of computed tokens (rows x longest row, per batch) that are padding."
    computed = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - sum(int(lengths[b].sum()) for b in batches) / computed


def plans(lengths, batch_size: int, max_tokens: int, seed: int = 0) -> dict:
    "The batches of one pass: fixed `batch_size` (shuffled) and the token budget (`TokenBudgetBatchSampler`)."
    from textmtl.data.batching import TokenBudgetBatchSampler
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    fixed = [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]
    return {"fixed": fixed, "budget": list(TokenBudgetBatchSampler(lengths, max_tokens, generator=g))}


def run(steps: int = 6, config: str = "configs/training/quick.yaml", n_texts: int = 20000, log=print) -> dict:
    import yaml
    from textmtl.data.tokenization import Tokenizer, TokenizerConfig
    from textmtl.data.batching import token_lengths
    from textmtl.models.factory import from_hf_bert, resolve_pretrained
    from textmtl.models.cpu_kernels import enable_cpu_kernels
    from textmtl.tasks import get_task
    from .train_step import textmtl_loss, textmtl_optimizer
    cfg = yaml.safe_load((ROOT/config).read_text())
    d = cfg["data"]
    folder = resolve_pretrained(cfg["init_from_hf_bert"])
    tok = Tokenizer(TokenizerConfig(local_dir=str(folder)))
    res = {}
    for task in ("emotion", "topic"):
        path = ROOT/"data"/"processed"/task/"train.jsonl"
        if not path.is_file(): raise SystemExit(f"{path} not found: run `make train` (or `textmtl prepare`) first")
        t = get_task(task)
        ds = t.load(path, max_examples=n_texts)
        L = token_lengths(tok, ds.texts, d["max_source_length"])
        p = plans(L, d["batch_size"][task], d["max_tokens"][task])
        torch.manual_seed(0)
        model = enable_cpu_kernels(from_hf_bert(folder, {task: ds.classes}, eos_token_id=tok.eos_token_id,
                                                decoder_layers=cfg["model"]["decoder_layers"], dropout=0.0))
        collate = t.collator(tok, d["max_source_length"])
        out = {}
        opt = textmtl_optimizer(model)
        model.train()
        times = {k: [] for k in p}
        for i in range(steps + 1):                 # interleaved (ABBA), the first round warms up
            for kind in (list(p) if i % 2 == 0 else list(p)[::-1]):
                batch = collate([ds[j] for j in p[kind][i]])
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                textmtl_loss(model, task, batch).backward(); opt.step()
                if i: times[kind].append(time.perf_counter() - t0)
        for kind, batches in p.items():
            sec = median(times[kind])
            out[kind] = {"padding": padding_share(batches, L), "examples_per_step": float(np.mean([len(b) for b in batches])),
                         "s_per_step": sec, "examples_per_s": float(np.mean([len(b) for b in batches[1:steps + 1]])) / sec}
        res[task] = out
        f, b = out["fixed"], out["budget"]
        log(f"{task}: padding {f['padding']:.0%} -> {b['padding']:.0%}; examples/step {f['examples_per_step']:.1f} -> "
            f"{b['examples_per_step']:.1f}; s/step {f['s_per_step']:.3f} -> {b['s_per_step']:.3f}; examples/s "
            f"{f['examples_per_s']:.1f} -> {b['examples_per_s']:.1f} ({b['examples_per_s'] / f['examples_per_s']:.2f}x)")
    return res


if __name__ == "__main__":
    import argparse
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--steps", type=int, default=6)
    a.add_argument("--config", default="configs/training/quick.yaml")
    args = a.parse_args()
    run(args.steps, args.config)
