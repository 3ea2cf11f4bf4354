"""The warm-started model of quick.yaml (BERT2BERT from all-MiniLM-L6-v2, copy mechanism off) against its transformers
twin, an `EncoderDecoderModel` of a `BertModel` and a `BertLMHeadModel` with the same weights (`export_hf_bert2bert`):
training step time and greedy / beam-4 tokens per second, interleaved, on real WordPiece batches.

    python -m bench.bert2bert              # prints the table
    python -m bench.run_all --sizes bert2bert
"""
from __future__ import annotations

import copy, sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1])); __package__ = "bench"

import torch

from .common import EMOTIONS, TOPICS, ROOT, enable_cpu_kernels, interleaved, median, mirror, raw_items
from .train_step import lm_loss, ours_step_fn

BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def build(decoder_layers: int = 3, backbone: str = BACKBONE, device="cpu"):
    "(twin, ours, tokenizer): the warm-started textmtl model without the copy mechanism and its transformers twin."
    from textmtl.data.tokenization import Tokenizer, TokenizerConfig
    from textmtl.models.factory import export_hf_bert2bert, from_hf_bert, resolve_pretrained
    folder = resolve_pretrained(backbone)
    tok = Tokenizer(TokenizerConfig(local_dir=str(folder)))
    torch.manual_seed(0)
    ours = from_hf_bert(folder, {"emotion": EMOTIONS, "topic": TOPICS}, eos_token_id=tok.eos_token_id,
                        decoder_layers=decoder_layers, dropout=0.0, attention_dropout=0.0).to(device)
    twin = export_hf_bert2bert(ours).to(device)
    twin.config._attn_implementation = "sdpa"
    return twin, enable_cpu_kernels(ours), tok


def batches(tok, batch=8, src_len=144, tgt_len=48, device="cpu") -> dict:
    "A summarization batch of real CNN/DailyMail articles (mirror) through textmtl's collator."
    from textmtl.data.dataloader import Seq2SeqCollator
    items = raw_items(batch)
    if not items: raise SystemExit("bench.bert2bert needs the datasets mirror ($TEXTMTL_MIRROR or ../shared/datasets)")
    b = Seq2SeqCollator(tok, src_len, tgt_len)(items["summarization"][:batch])
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}


def bf16_rows(twin, ours, b: dict, reps: int, device="cpu", force: bool = False, log=print) -> dict:
    """Training steps of the same summarization batch, each on its own copy of the same weights: textmtl in float32,
    with its CPU bf16 kernels and under plain autocast, and the twin under the same autocast; step times (interleaved
    medians) and the loss after the same number of steps. Only where the CPU has native bf16 (or `force`)."""
    from textmtl.models.cpu_kernels import cpu_bf16_support
    ok, why = cpu_bf16_support()
    if device != "cpu": return {"skipped": "CPU only (CUDA trains bf16 through autocast)"}
    if not ok and not force:
        log(f"  bf16 rows skipped: {why} (emulated bf16 is slower than float32; --bf16 forces them)")
        return {"skipped": why}
    fns = {f"textmtl:{p}": ours_step_fn(copy.deepcopy(ours), "summarization", b, precision=p)
           for p in ("float32", "bf16", "autocast")}
    hf, opt = copy.deepcopy(twin).train(), None
    opt = torch.optim.AdamW(hf.parameters(), lr=1e-4)
    def hf_autocast():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"], decoder_input_ids=b["decoder_input_ids"],
                     decoder_attention_mask=b["decoder_attention_mask"], use_cache=False)
            loss = lm_loss(out.logits, b["labels"])
        loss.backward(); opt.step()
    fns["hf:autocast"] = hf_autocast
    med = {k: median(v) for k, v in interleaved(fns, reps, device=device).items()}
    res = {"median_s": med, "cpu": why, "loss_after": {k: f.losses[-1] for k, f in fns.items() if hasattr(f, "losses")},
           "ratio_fp32": med["textmtl:bf16"] / med["textmtl:float32"], "ratio_twin": med["textmtl:bf16"] / med["hf:autocast"]}
    res["met"] = res["ratio_fp32"] <= 0.7 and res["ratio_twin"] <= 0.6
    log(f"  bf16 step ({why})  textmtl float32 {med['textmtl:float32']:.3f} s  bf16 {med['textmtl:bf16']:.3f} s "
        f"({res['ratio_fp32']:.2f}x, target <= 0.70x)  autocast {med['textmtl:autocast']:.3f} s  "
        f"twin autocast {med['hf:autocast']:.3f} s ({res['ratio_twin']:.2f}x, target <= 0.60x)")
    log("  loss after the same steps: " + ", ".join(f"{k} {v:.4f}" for k, v in res["loss_after"].items()))
    return res


def run(reps: int = 3, decoder_layers: int = 3, batch: int = 8, src_len: int = 144, tgt_len: int = 48,
        new_tokens: int = 32, device="cpu", log=print, bf16: bool = False) -> dict:
    "Step-time and generation ratios textmtl / transformers; outputs must be identical with the copy mechanism off."
    from transformers import GenerationConfig
    twin, ours, tok = build(decoder_layers, device=device)
    b = batches(tok, batch, src_len, tgt_len, device)
    gen_twin, gen_ours = copy.deepcopy(twin), copy.deepcopy(ours)     # training changes the weights: generate from copies
    opt = torch.optim.AdamW(twin.parameters(), lr=1e-4)
    def hf_step():
        opt.zero_grad(set_to_none=True)
        out = twin(input_ids=b["input_ids"], attention_mask=b["attention_mask"], decoder_input_ids=b["decoder_input_ids"],
                   decoder_attention_mask=b["decoder_attention_mask"], use_cache=False)
        loss = lm_loss(out.logits, b["labels"]); loss.backward(); opt.step()
    twin.train()
    times = interleaved({"hf": hf_step, "textmtl": ours_step_fn(ours, "summarization", b)}, reps, device=device)
    step = {k: median(v) for k, v in times.items()}
    res = {"train": {"median_s": step, "ratio": step["textmtl"] / step["hf"], "target": 0.8}}
    res["train"]["met"] = res["train"]["ratio"] <= 0.8
    res["bf16"] = bf16_rows(gen_twin, gen_ours, b, reps, device, force=bf16, log=log)
    twin, ours = gen_twin.eval(), gen_ours.eval()
    ids, mask = b["input_ids"][:4], b["attention_mask"][:4]
    for k in (1, 4):
        beam = dict(length_penalty=1.0, early_stopping=True) if k > 1 else {}
        gc = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_beams=k, do_sample=False,
                              no_repeat_ngram_size=0, decoder_start_token_id=ours.decoder_start_token_id,
                              eos_token_id=ours.eos_token_id, pad_token_id=ours.pad_token_id, use_cache=True, **beam)
        out = {}
        def f_hf(): out["hf"] = twin.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
        def f_us(): out["textmtl"] = ours.generate(ids, mask, max_new_tokens=new_tokens, num_beams=k,
                                                   min_new_tokens=new_tokens, length_penalty=1.0)
        with torch.inference_mode(): t = interleaved({"hf": f_hf, "textmtl": f_us}, reps, device=device)
        med = {n: median(v) for n, v in t.items()}
        tps = {n: ids.shape[0] * new_tokens / s for n, s in med.items()}
        res[f"beam{k}"] = {"tokens_per_s": tps, "ratio": tps["textmtl"] / tps["hf"], "target": 1.5,
                           "met": tps["textmtl"] / tps["hf"] >= 1.5,
                           "identical": bool(torch.equal(out["hf"].cpu(), out["textmtl"].cpu()))}
    log(f"bert2bert ({decoder_layers} decoder layers, batch {batch} x {src_len}/{tgt_len}, {reps} reps):")
    log(f"  train step      HF {step['hf']:.3f} s   textmtl {step['textmtl']:.3f} s   {res['train']['ratio']:.2f}x (target <= 0.80x)")
    for k in (1, 4):
        r = res[f"beam{k}"]
        log(f"  {'greedy' if k == 1 else 'beam 4'} tok/s   HF {r['tokens_per_s']['hf']:.0f}   textmtl {r['tokens_per_s']['textmtl']:.0f}"
            f"   {r['ratio']:.2f}x (target >= 1.50x)   outputs identical: {r['identical']}")
    return res


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--decoder-layers", type=int, default=3)
    p.add_argument("--bf16", action="store_true", help="time the bf16 rows also on a CPU without native bf16 (emulated)")
    a = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    run(reps=a.reps, decoder_layers=a.decoder_layers, bf16=a.bf16)
