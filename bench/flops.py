"""Achieved FLOP/s of a training step against the measured dense float32 matmul peak of the same machine."""
from __future__ import annotations

import time

import torch

from .common import BenchSize, sync


def step_flops(model_cfg: dict, B: int, S: int, T: int, V: int = 50265) -> dict:
    """Matmul FLOPs (2 m n k each) of one training step (forward + backward = 3 x forward) of the encoder-decoder
    with B x S source and B x T target tokens. Attention scores are counted in full (no causal/padding discount),
    as model-FLOP counts usually are. Returns the forward parts and the `total` of the step."""
    D, Fe, Fd = model_cfg["d_model"], model_cfg["encoder_ffn_dim"], model_cfg["decoder_ffn_dim"]
    Le, Ld = model_cfg["encoder_layers"], model_cfg["decoder_layers"]
    Ne, Nd = B * S, B * T
    f = {
        "encoder_linear": Le * (2 * Ne * D * 3 * D + 2 * Ne * D * D + 2 * 2 * Ne * D * Fe),
        "encoder_attention": Le * 2 * 2 * B * S * S * D,
        "decoder_linear": Ld * (2 * Nd * D * 3 * D + 2 * Nd * D * D             # self q,k,v + out
                                + 2 * Nd * D * D + 2 * Ne * D * 2 * D + 2 * Nd * D * D   # cross q, k/v, out
                                + 2 * 2 * Nd * D * Fd),
        "decoder_attention": Ld * 2 * 2 * B * T * (T + S) * D,
        "lm_head": 2 * Nd * D * V,
    }
    fwd = sum(f.values())
    return {"forward": f, "forward_total": fwd, "total": 3 * fwd,
            "attention_total": 3 * (f["encoder_attention"] + f["decoder_attention"])}


def counted_flops(model, task: str, batch: dict) -> int:
    """FLOPs seen by `torch.utils.flop_counter.FlopCounterMode` in forward + backward (CPU SDPA is not counted).
    Counted with textmtl's oneDNN linears switched off: `FlopCounterMode` knows aten's matmuls, not
    `torch.ops.mkldnn._linear_pointwise`, and both do the same products."""
    from torch.utils.flop_counter import FlopCounterMode
    from .train_step import onednn, task_loss
    model.train()
    with onednn(False), FlopCounterMode(display=False) as fc:
        task_loss(task, model(task, batch), batch).backward()
    model.zero_grad(set_to_none=True)
    return int(fc.get_total_flops())


def matmul_fn(device="cpu", n: int | None = None):
    "(closure doing one float32 n x n torch.mm, its FLOPs): timed interleaved with the steps, so under the same load."
    n = n or (8192 if str(device).startswith("cuda") else 2048)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return (lambda: torch.mm(a, b)), 2 * n ** 3


def matmul_peak(device="cpu", n: int | None = None, reps: int = 5) -> dict:
    "Best float32 FLOP/s of `torch.mm` on n x n matrices (n = 2048 on CPU, 8192 on CUDA), after a warm-up."
    n = n or (8192 if str(device).startswith("cuda") else 2048)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b); sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter(); torch.mm(a, b); sync(device); best = min(best, time.perf_counter() - t0)
    return {"n": n, "best_s": best, "flops_per_s": 2 * n ** 3 / best,
            "tf32": bool(str(device).startswith("cuda") and torch.backends.cuda.matmul.allow_tf32)}


def run(size: BenchSize, ours, batches, step_s: dict, device="cpu", matmul_s: float | None = None) -> dict:
    """Analytic FLOPs of the summarization step (padded shapes: the work HF does), the FlopCounterMode cross-check
    (what textmtl executes), achieved FLOP/s vs the matmul peak. `matmul_s`: median seconds of the 2048^2 (CPU) /
    8192^2 (CUDA) mm timed interleaved with the steps; without it the peak is measured here (best of 5)."""
    b = batches["summarization"]
    B, S = b["input_ids"].shape
    T = b["labels"].shape[1]
    fl = step_flops(size.model, B, S, T, ours.vocab_size)
    counted = counted_flops(ours, "summarization", b)
    if matmul_s:
        n = 8192 if str(device).startswith("cuda") else 2048
        peak = {"n": n, "median_s": matmul_s, "flops_per_s": 2 * n ** 3 / matmul_s, "interleaved": True}
    else: peak = matmul_peak(device)
    out = {"flops": fl, "flop_counter": counted, "peak": peak, "shape": [B, S, T]}
    for impl, s in step_s.items():
        out[impl] = {"step_s": s, "flops_per_s": fl["total"] / s, "fraction_of_peak": fl["total"] / s / peak["flops_per_s"]}
    return out
