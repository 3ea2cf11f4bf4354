"""Generation (greedy and beam 4, KV cache, same inputs and lengths): textmtl vs transformers `generate`."""
from __future__ import annotations

import torch

from .common import BenchSize, interleaved, median
from .train_step import onednn


def hf_generation_config(max_new_tokens: int, num_beams: int):
    """Everything explicit: exactly `max_new_tokens` tokens (eos banned until then), no forced bos/eos, no n-gram
    ban, no sampling, length penalty 1, KV cache."""
    from transformers import GenerationConfig
    beam = dict(length_penalty=1.0, early_stopping=True) if num_beams > 1 else {}
    return GenerationConfig(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, num_beams=num_beams,
                            do_sample=False, no_repeat_ngram_size=0, **beam,
                            forced_bos_token_id=None, forced_eos_token_id=None, repetition_penalty=1.0,
                            num_return_sequences=1, use_cache=True, bos_token_id=0, eos_token_id=2, pad_token_id=1,
                            decoder_start_token_id=2)


def check_hf_config(hf):
    "generate() fills a call's unset options from the model's own generation config: it must not force tokens."
    g = hf.generation_config
    bad = {k: getattr(g, k, None) for k in ("forced_bos_token_id", "forced_eos_token_id") if getattr(g, k, None) is not None}
    if bad: raise ValueError(f"the HF model's generation_config forces tokens {bad}: the lengths would differ")


def run(size: BenchSize, hf, ours, batches, device="cpu", reps=None, beams=(1, 4), variants=False) -> dict:
    """Tokens per second (batch x new tokens / seconds, interleaved medians) of both implementations for each beam
    width, and whether the outputs are identical (required for greedy)."""
    reps = reps or size.reps
    b = batches["summarization"]
    ids, mask = b["input_ids"], b["attention_mask"]
    B, N = ids.shape[0], size.max_new_tokens
    hf.eval(); ours.eval()
    check_hf_config(hf)
    out = {"batch": B, "new_tokens": N}
    for k in beams:
        gc = hf_generation_config(N, k)
        res = {}
        def f_hf(): res["hf"] = hf.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
        def f_ours_call(): return ours.generate(ids, mask, max_new_tokens=N, num_beams=k, min_new_tokens=N,
                                                no_repeat_ngram_size=0, length_penalty=1.0, early_stopping=True)
        def f_ours(): res["textmtl"] = f_ours_call()
        fns = {"hf": f_hf, "textmtl": f_ours}
        if variants:                            # textmtl with its oneDNN linears off: aten/MKL matmuls
            def f_off():
                with onednn(False): res["textmtl:onednn_off"] = f_ours_call()
            fns["textmtl:onednn_off"] = f_off
        with torch.inference_mode():
            times = interleaved(fns, reps, warmup=1, device=device)
        a, c = res["hf"].cpu(), res["textmtl"].cpu()
        assert a.shape == (B, N + 1) and c.shape == (B, N + 1), (a.shape, c.shape)
        med = {n: median(t) for n, t in times.items()}
        tps = {n: B * N / s for n, s in med.items()}
        out[f"beam{k}"] = {"median_s": med, "times_s": times, "tokens_per_s": tps, "ratio": tps["textmtl"] / tps["hf"],
                           "target": 1.5, "met": tps["textmtl"] / tps["hf"] >= 1.5,
                           "identical": bool(torch.equal(a, c)), "rows_identical": int((a == c).all(1).sum())}
        if variants:
            off = res["textmtl:onednn_off"].cpu()
            out[f"beam{k}"]["onednn_off"] = {"tokens_per_s": tps["textmtl:onednn_off"],
                                             "ratio": tps["textmtl:onednn_off"] / tps["hf"],
                                             "rows_identical": int((a == off).all(1).sum())}
    return out
