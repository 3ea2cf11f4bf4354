"""Data-parallel training with torchrun on CPU (gloo, 2 processes) against a single process on the same global batch.

1. A tiny synthetic, deterministic multi-task problem (no dropout, equal-length targets, so per-rank means average to the
   global mean exactly): the per-step train losses, gradient norms and validation losses of 2 processes x batch 4 must
   match 1 process x batch 8 (`allclose`, rtol 1e-4 / atol 1e-5: only the float summation order differs), and so must
   the final weights. Two micro-batches per step exercise `no_sync` accumulation; temperature sampling checks that
   every rank draws the same task.
2. The real command line: `torchrun --nproc_per_node 2 -m textmtl.cli train --config tiny.yaml` on a tiny project
   writes one complete run folder (rank 0 only: no duplicated history records), and its loss curve matches
   `textmtl train` in one process with twice the per-process batch.
"""
import json, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st
from safetensors.torch import load_file

from textmtl.training.distributed import ShardedBatchSampler
from tiny_project import ROOT, make_project, subprocess_env

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2"]

WORKER = r'''
import sys, torch
torch.set_num_threads(1)
from torch.utils.data import DataLoader
from textmtl.data.tokenization import TokenizerMetadata
from textmtl.models.factory import build_multitask_model
from textmtl.models.transformer import ModelConfig
from textmtl.training.distributed import cleanup_distributed, init_distributed
from textmtl.training.trainer import Trainer, TrainerConfig

META = TokenizerMetadata(vocab_size=24, pad_token_id=1, bos_token_id=0, eos_token_id=2, mask_token_id=3,
                         decoder_start_token_id=2, max_length=16)
LABELS = {"emotion": ["anger", "joy", "surprise"], "topic": ["A", "B", "C", "D"]}

def toy(task, n, seed):
    g, out = torch.Generator().manual_seed(seed * 31 + len(task)), []
    for _ in range(n):
        y = int(torch.randint(4, (1,), generator=g))
        ids = torch.cat([torch.tensor([0]), 8 + 4 * y + torch.randint(4, (6,), generator=g), torch.tensor([2])])
        item = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if task == "summarization":
            lab = torch.tensor([8 + 4 * y, 9 + 4 * y, 2])
            item.update(labels=lab, decoder_input_ids=torch.cat([torch.tensor([2]), lab[:-1]]),
                        decoder_attention_mask=torch.ones(3, dtype=torch.long))
        elif task == "emotion": item["labels"] = torch.stack([(ids == 8 + k).any() for k in range(3)]).float()
        else: item["labels"] = torch.tensor(y)
        out.append(item)
    return out

out, bs = sys.argv[1], int(sys.argv[2])
ctx = init_distributed("cpu")
torch.manual_seed(0)
mc = ModelConfig(arch="bart", d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=32,
                 dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
model = build_multitask_model(mc, META, LABELS)
cfg = TrainerConfig(lr=3e-3, max_steps=12, warmup_steps=2, eval_every=6, log_every=1, grad_accum_steps=2, seed=7,
                    sampling="temperature", device="cpu", progress_bar=False, max_new_tokens=3)
tasks = ("summarization", "emotion", "topic")
train = {t: DataLoader(toy(t, 32, 0), batch_size=bs, shuffle=True, generator=torch.Generator()) for t in tasks}
val = {t: DataLoader(toy(t, 8, 1), batch_size=4) for t in tasks}
trainer = Trainer(model, cfg, None, LABELS, out)
is_ddp = out.endswith("ddp")
assert trainer.dist.world_size == (2 if is_ddp else 1) and (trainer.ddp is not None) == is_ddp
trainer.fit(train, val)
cleanup_distributed()
'''


def history(run):
    return [json.loads(l) for l in (Path(run) / "history.jsonl").read_text().splitlines() if l.strip()]


def curve(recs, kind, keys=None):
    "{(step, key): value} of the numeric fields of `kind` records (all but time/lr when keys is None)."
    out = {}
    for r in recs:
        if r["kind"] != kind: continue
        for k, v in r.items():
            if k in ("kind", "step", "time") or not isinstance(v, (int, float)): continue
            if keys is None or k in keys: out[(r["step"], k)] = v
    return out


def assert_close(a: dict, b: dict, rtol=1e-4, atol=1e-5):
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
    print(f"{len(a)} values, max |difference| {max(abs(a[k] - b[k]) for k in a):.2e}")
    bad = {k: (a[k], b[k]) for k in a if abs(a[k] - b[k]) > atol + rtol * abs(b[k])}
    assert not bad, bad


def run(cmd, cwd, timeout=240):
    r = subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-6000:]}"
    return r


def test_ddp_matches_single_process_on_the_same_global_batch(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run([sys.executable, str(script), str(tmp_path / "single"), "8"], tmp_path)
    run(TORCHRUN + [str(script), str(tmp_path / "ddp"), "4"], tmp_path)
    single, ddp = history(tmp_path / "single"), history(tmp_path / "ddp")
    # same steps, same tasks at each step, same logged numbers; one history (rank 0 wrote it, once)
    assert [(r["kind"], r["step"]) for r in ddp] == [(r["kind"], r["step"]) for r in single]
    assert len([r for r in ddp if r["kind"] == "train"]) == 12
    tr_single, tr_ddp = curve(single, "train"), curve(ddp, "train")
    assert {k for _, k in tr_single} >= {"train/summarization/loss", "train/emotion/loss", "train/topic/loss", "grad_norm"}
    assert_close(tr_ddp, tr_single)
    assert_close(curve(ddp, "eval"), curve(single, "eval"))
    a = load_file(tmp_path / "ddp" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "single" / "checkpoints" / "last" / "model.safetensors")
    assert a.keys() == b.keys() and not any(k.startswith("module.") for k in a)
    for k in a: torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    # the DDP checkpoint carries both ranks' RNG states (exact resume of a data-parallel run)
    state = torch.load(tmp_path / "ddp" / "checkpoints" / "last" / "training_state.pt", weights_only=True)
    assert len(state["extra"]["rng_per_rank"]) == 2


def test_torchrun_cli_train(tmp_path, mirror):
    tasks = ("emotion", "topic")   # per-example means: 2 x 4 averages to exactly the 1 x 8 loss
    cfg = make_project(tmp_path, tasks=tasks, n=(32, 8, 8), max_steps=8, eval_every=4)
    no_dropout = ["--set", "model.dropout=0.0", "--set", "model.classifier_dropout=0.0"]   # same masks needed to compare
    ddp_cmd = TORCHRUN + ["-m", "textmtl.cli", "train", "--config", str(cfg), "--output-dir", str(tmp_path / "ddp")] + no_dropout
    r = run(ddp_cmd, ROOT, timeout=300)
    assert r.stdout.count("[textmtl] done in") == 1, r.stdout   # rank 0 prints, the other rank is quiet
    single_cmd = [sys.executable, "-m", "textmtl.cli", "train", "--config", str(cfg), "--output-dir", str(tmp_path / "single")]
    run(single_cmd + no_dropout + ["--set", "data.batch_size.emotion=8", "--set", "data.batch_size.topic=8"], ROOT)
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    for f in ("config.yaml", "metrics.json", "history.jsonl", "learning_curves.png", "artifacts/labels.json",
              "checkpoints/best/meta.json", "checkpoints/last/meta.json"):
        assert (ddp / f).exists(), f
    h_ddp, h_single = history(ddp), history(single)
    assert [(r["kind"], r["step"]) for r in h_ddp] == [(r["kind"], r["step"]) for r in h_single]
    keys = {f"train/{t}/loss" for t in tasks} | {"grad_norm"}
    assert_close(curve(h_ddp, "train", keys), curve(h_single, "train", keys), rtol=1e-3, atol=1e-4)
    m = json.loads((ddp / "metrics.json").read_text())
    assert m["steps"] == 8 and m["metrics"]["topic/examples"] == 8
    # a data-parallel checkpoint carries every rank's RNG state (dropout streams) for an exact resume
    state = torch.load(ddp / "checkpoints" / "last" / "training_state.pt", weights_only=True)
    assert len(state["extra"]["rng_per_rank"]) == 2


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 60), bs=st.integers(1, 7), world=st.integers(1, 5), drop_last=st.booleans(), seed=st.integers(0, 99))
def test_sharded_batches_partition_the_global_batch(n, bs, world, drop_last, seed):
    "Every rank takes the same number of steps; the shares of a step, in rank order, are the single-process batch."
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    shards = [list(ShardedBatchSampler(order, bs, r, world, drop_last)) for r in range(world)]
    steps = len(ShardedBatchSampler(order, bs, 0, world, drop_last))
    assert all(len(s) == steps for s in shards)
    g = bs * world
    for k in range(steps):
        shares = [s[k] for s in shards]
        assert sum(shares, []) == order[k * g:(k + 1) * g] and min(map(len, shares)) >= 1
        assert max(map(len, shares)) - min(map(len, shares)) <= 1 and max(map(len, shares)) <= bs
    left_out = n - sum(len(b) for s in shards for b in s)           # only an incomplete last global batch
    assert left_out < (g if drop_last else world)
