"""Training step (forward + backward + AdamW step): textmtl vs transformers BART with the same config and weights."""
from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F

from .common import BenchSize, build_textmtl_arch, interleaved, median


def lm_loss(logits, labels):
    "Token cross-entropy over the LM logits, -100 ignored (what textmtl's trainer computes)."
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)


def task_loss(task, logits, batch):
    if task == "summarization": return lm_loss(logits, batch["labels"])
    if task == "emotion": return F.binary_cross_entropy_with_logits(logits.float(), batch["labels"].float())
    return F.cross_entropy(logits.float(), batch["labels"].long())


def hf_step_fn(hf, batch, **opt_kw):
    "A closure doing one HF training step on the summarization `batch`; returns the loss."
    opt = torch.optim.AdamW(hf.parameters(), lr=1e-4, **opt_kw)
    hf.train()
    def step():
        opt.zero_grad(set_to_none=True)
        out = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 decoder_input_ids=batch["decoder_input_ids"], decoder_attention_mask=batch["decoder_attention_mask"],
                 use_cache=False)
        loss = lm_loss(out.logits, batch["labels"])
        loss.backward(); opt.step()
        return loss
    return step


def textmtl_optimizer(model, lr=1e-4):
    "The optimizer textmtl's Trainer builds (`make_optimizer`: fused AdamW where supported), at the bench's lr."
    from textmtl.training.trainer import TrainerConfig, make_optimizer
    return make_optimizer(model, TrainerConfig(lr=lr, max_steps=1))


def textmtl_loss(model, task, batch):
    "The loss of textmtl's training step: for summarization the packed-rows path the Trainer uses, else `task_loss`."
    if task == "summarization" and hasattr(model, "summarization_loss"): return model(task, batch, return_loss=True)
    return task_loss(task, model(task, batch), batch)


@contextmanager
def onednn(enabled: bool):
    "Context: textmtl's oneDNN matmuls on/off for the duration (a no-op for a textmtl without them)."
    try: from textmtl.models.cpu_kernels import set_onednn
    except ImportError:
        yield; return
    prev = set_onednn(enabled)
    try: yield
    finally: set_onednn(prev)


def precision_block(precision: str = "float32", device="cpu"):
    """The context a training step runs in: 'float32' (none), 'bf16' (textmtl's CPU bf16 kernels, `bf16_weights`:
    each weight cast once per step) or 'autocast' (plain `torch.autocast(device, bfloat16)`)."""
    if precision == "bf16":
        from textmtl.models.cpu_kernels import bf16_weights
        return bf16_weights()
    if precision == "autocast": return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return nullcontext()


def ours_step_fn(model, task, batch, legacy=False, use_onednn=True, precision="float32", **opt_kw):
    """A closure doing one textmtl training step of `task` on `batch`, as the Trainer does it (its optimizer, its loss).
    `legacy=True`: the step before any optimisation (full logits + `task_loss`, plain torch AdamW, no oneDNN);
    `use_onednn=False`: the Trainer's step with textmtl's oneDNN linears switched off (aten/MKL matmuls);
    `precision`: see `precision_block`. The closure's `.losses` keeps the loss of every call."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **opt_kw) if legacy else textmtl_optimizer(model)
    model.train()
    def step():
        with onednn(use_onednn and not legacy):
            opt.zero_grad(set_to_none=True)
            with precision_block(precision, next(model.parameters()).device):
                loss = task_loss(task, model(task, batch), batch) if legacy else textmtl_loss(model, task, batch)
                loss.backward()
            opt.step()
        step.losses.append(float(loss))
        return loss
    step.losses = []
    return step


def packed_loss(model, batch):
    "The summarization loss on the decoder's packed rows: now the library's own `summarization_loss`."
    return model.summarization_loss(batch)


def run(size: BenchSize, hf, ours, batches, device="cpu", reps=None, variants=True, matmul=True) -> dict:
    """Interleaved medians (seconds) of one training step. Headline: textmtl / HF on the same summarization batch.
    The textmtl rows run the Trainer's step (`make_optimizer`, the packed summarization loss); HF runs plain torch
    AdamW and the loss on its logits, as a HF user would. Extra textmtl rows: emotion and topic batches (multi-task
    shapes); with `variants`, the config's own arch, `legacy_step` (full logits + plain AdamW without oneDNN: the step
    before any optimisation) and `onednn_off` (today's step with the oneDNN linears off)."""
    reps = reps or size.reps
    sb = batches["summarization"]
    # the same weights, the same data: check that both compute the same loss before timing anything
    hf.eval(); ours.eval()
    with torch.no_grad():
        l_hf = lm_loss(hf(input_ids=sb["input_ids"], attention_mask=sb["attention_mask"],
                          decoder_input_ids=sb["decoder_input_ids"],
                          decoder_attention_mask=sb["decoder_attention_mask"]).logits, sb["labels"]).item()
        l_ours = lm_loss(ours("summarization", sb), sb["labels"]).item()
        try:                                    # the Trainer's packed summarization loss must equal the logits' loss
            l_packed = packed_loss(ours, sb).item()
        except (ImportError, TypeError, AttributeError) as e:
            l_packed = None
            print(f"   (packed_loss check skipped: {type(e).__name__}: {e})")
    fns = {"hf": hf_step_fn(hf, sb), "textmtl": ours_step_fn(ours, "summarization", sb),
           "textmtl:emotion": ours_step_fn(ours, "emotion", batches["emotion"]),
           "textmtl:topic": ours_step_fn(ours, "topic", batches["topic"])}
    if variants:
        fns["textmtl:legacy_step"] = ours_step_fn(copy.deepcopy(ours), "summarization", sb, legacy=True)
        fns["textmtl:onednn_off"] = ours_step_fn(copy.deepcopy(ours), "summarization", sb, use_onednn=False)
        if size.config_arch != "bart":
            fns[f"textmtl:arch_{size.config_arch}"] = ours_step_fn(build_textmtl_arch(size, size.config_arch, device),
                                                                   "summarization", sb)
    if matmul:                                  # the machine's matmul peak, under the same load as the steps
        from .flops import matmul_fn
        fns["matmul"] = matmul_fn(device)[0]
    times = interleaved(fns, reps, warmup=1, device=device)
    med = {k: median(v) for k, v in times.items()}
    mm = med.pop("matmul", None)
    return {"median_s": med, "times_s": times, "loss_hf": l_hf, "loss_textmtl": l_ours, "loss_packed": l_packed, "matmul_s": mm,
            "ratio": med["textmtl"] / med["hf"], "target": 0.8, "met": med["textmtl"] / med["hf"] <= 0.8,
            "shapes": {t: {k: list(v.shape) for k, v in b.items() if torch.is_tensor(v)} for t, b in batches.items()}}
