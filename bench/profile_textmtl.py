"""Where textmtl's time goes: torch.profiler over a few training steps (by phase and by operator) and generation."""
from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from .common import BenchSize
from .train_step import textmtl_loss, textmtl_optimizer


def _table(prof, device, limit):
    key = "self_cuda_time_total" if str(device).startswith("cuda") else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=limit)


def _phases(prof, names) -> dict:
    "Total CPU-side milliseconds per step phase (record_function labels)."
    ev = {e.key: e for e in prof.key_averages()}
    return {n: ev[n].cpu_time_total / 1e3 for n in names if n in ev}


def profile_train(ours, batches, device="cpu", steps: int = 3, task="summarization", limit=20) -> dict:
    """Profile `steps` of the Trainer's own training step of `task` (its optimizer, `make_optimizer`; its loss, the
    fused `summarization_loss` for summarization) after one warm-up: phase totals (ms) and the top operators."""
    opt = textmtl_optimizer(ours)
    b = batches[task]
    ours.train()
    def step():
        opt.zero_grad(set_to_none=True)
        with record_function("phase:forward+loss"): loss = textmtl_loss(ours, task, b)
        with record_function("phase:backward"): loss.backward()
        with record_function("phase:optimizer"): opt.step()
    step()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if str(device).startswith("cuda") else [])
    with profile(activities=acts) as prof:
        for _ in range(steps): step()
    phases = _phases(prof, ["phase:forward+loss", "phase:backward", "phase:optimizer"])
    return {"steps": steps, "phases_ms": {k: v / steps for k, v in phases.items()}, "table": _table(prof, device, limit)}


def profile_generate(ours, batches, size: BenchSize, device="cpu", num_beams=1, limit=15) -> dict:
    "Profile one generation call (after a warm-up): the top operators table."
    b = batches["summarization"]
    N = size.max_new_tokens
    g = lambda: ours.generate(b["input_ids"], b["attention_mask"], max_new_tokens=N, num_beams=num_beams, min_new_tokens=N)
    ours.eval()
    with torch.inference_mode():
        g()
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if str(device).startswith("cuda") else [])
        with profile(activities=acts) as prof:
            with record_function("generate:encode"): enc = ours.encode(b["input_ids"], b["attention_mask"])
            g()
    return {"num_beams": num_beams, "table": _table(prof, device, limit)}
