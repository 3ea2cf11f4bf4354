"""Serving dtypes (float32, bf16, int8; `textmtl.models.precision`) of the model `make train` trains (quick.yaml's
BERT2BERT warm start, copy mechanism off so that it has a `transformers` twin), against that `EncoderDecoderModel` twin
run under the same dtype: greedy and beam-4 tokens/s at batch 1 and 8, first-token latency, the weights' memory,
and the machine's limit (weight bytes read per decoded token against the measured memory bandwidth; the matmul peak
for the batched case).

    python -m bench.dtypes                 # prints the table (about 5 minutes on 2 cores)
    python -m bench.dtypes --reps 5 --json /tmp/dtypes.json

The twin in bf16 runs two ways: under `torch.autocast` (what the issue compares with) and with its weights cast to
bf16 (`.to(torch.bfloat16)`, the fairer comparison); in int8 it is `quantize_dynamic` of its `nn.Linear`s.
"""
from __future__ import annotations

import copy, json, sys, time
from contextlib import nullcontext
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1])); __package__ = "bench"

import torch
import torch.nn as nn

from .common import interleaved, median

BATCHES, BEAMS = (1, 8), (1, 4)


def bandwidth_gbs(mb: int = 512, reps: int = 5) -> float:
    "Memory read bandwidth, GB/s: the best of `reps` sums over a `mb` MB float32 tensor (all threads)."
    x = torch.ones(mb * 2**20 // 4)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter(); x.sum(); best = min(best, time.perf_counter() - t0)
    return x.numel() * 4 / best / 1e9


def matmul_peak_gflops(dtype=torch.float32, n: int = 2048, reps: int = 3) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps): a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def nbytes(m) -> int:
    "Bytes of one module's own weights (a dynamically quantized linear: its int8 weight and float bias)."
    if hasattr(m, "_packed_params") and hasattr(m, "weight") and callable(m.weight):
        w, b = m.weight(), m.bias()
        return w.numel() + (0 if b is None else b.numel() * 4)
    return sum(p.numel() * p.element_size() for p in m.parameters(recurse=False))


def model_bytes(model) -> int:
    "Bytes of all of a model's weights as stored for serving (plus a separate LM-head copy, where there is one)."
    extra = model.__dict__.get("_lm_weight")
    return sum(nbytes(m) for m in model.modules()) + (0 if extra is None else extra.numel() * extra.element_size())


def decode_bytes(ours) -> dict:
    "Bytes of weights read per decoding step (decoder layers except the cross-attention k/v, cached once; the LM head)."
    total = 0
    for layer in ours.decoder.layers:
        for name, m in layer.named_modules():
            if name.startswith("encoder_attn.") and ("k_proj" in name or "v_proj" in name or "kv_proj" in name): continue
            total += nbytes(m)
    lm = ours.lm_weight if hasattr(ours, "lm_weight") else ours.shared.weight
    return {"decoder": total, "lm_head": lm.numel() * lm.element_size(), "total": total + lm.numel() * lm.element_size()}


def build(decoder_layers: int = 3):
    "{name: (model, generate(ids, mask, beams, n) -> ids)} for textmtl and its twin in every dtype, and the tokenizer."
    from textmtl.models.precision import serve_in
    from .bert2bert import build as build_pair
    twin, ours, tok = build_pair(decoder_layers)
    twin.eval(); ours.eval()
    from transformers import GenerationConfig
    def hf_gen(model, ctx=nullcontext):
        def gen(ids, mask, k, n):
            beam = dict(length_penalty=1.0, early_stopping=True) if k > 1 else {}
            gc = GenerationConfig(max_new_tokens=n, min_new_tokens=n, num_beams=k, do_sample=False, no_repeat_ngram_size=0,
                                  decoder_start_token_id=ours.decoder_start_token_id, eos_token_id=ours.eos_token_id,
                                  pad_token_id=ours.pad_token_id, use_cache=True, **beam)
            with ctx(): return model.generate(input_ids=ids, attention_mask=mask, generation_config=gc)
        return gen
    def our_gen(model):
        return lambda ids, mask, k, n: model.generate(ids, mask, max_new_tokens=n, num_beams=k, min_new_tokens=n, length_penalty=1.0)
    models = {"textmtl:float32": ours, "textmtl:bf16": serve_in(ours, "bf16", copy_model=True),
              "textmtl:int8": serve_in(ours, "int8", copy_model=True)}
    hf16 = copy.deepcopy(twin).to(torch.bfloat16)
    hf8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(twin), {nn.Linear}, dtype=torch.qint8)
    gens = {k: our_gen(m) for k, m in models.items()}
    gens.update({"hf:float32": hf_gen(twin), "hf:bf16 autocast": hf_gen(twin, lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
                 "hf:bf16 weights": hf_gen(hf16), "hf:int8": hf_gen(hf8)})
    sizes = {**{k: model_bytes(m) for k, m in models.items()}, "hf:float32": model_bytes(twin),
             "hf:bf16 autocast": model_bytes(twin), "hf:bf16 weights": model_bytes(hf16), "hf:int8": model_bytes(hf8)}
    return models, gens, tok, sizes


def run(reps: int = 3, new_tokens: int = 32, src_len: int = 144, decoder_layers: int = 3, batches=BATCHES, beams=BEAMS,
        log=print) -> dict:
    from .bert2bert import batches as make_batch
    models, gens, tok, sizes = build(decoder_layers)
    b = make_batch(tok, max(batches), src_len, 48)
    res = {"new_tokens": new_tokens, "rows": {}, "bandwidth_gbs": bandwidth_gbs(),
           "peak_gflops": {"float32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)},
           "decode_bytes": {k.split(":")[1]: decode_bytes(m) for k, m in models.items()}}
    for B in batches:
        ids, mask = b["input_ids"][:B], b["attention_mask"][:B]
        for k in beams:
            fns = {n: (lambda g=g: g(ids, mask, k, new_tokens)) for n, g in gens.items()}
            with torch.inference_mode():
                t = interleaved(fns, reps)
                first = {n: median(v) for n, v in interleaved({n: (lambda g=g: g(ids, mask, k, 1)) for n, g in gens.items()}, reps).items()}
                outs = {n: f() for n, f in fns.items()}
            for n in gens:
                s = median(t[n])
                res["rows"][f"{n}|beam{k}|batch{B}"] = {"s": s, "tok_s": B * new_tokens / s, "first_token_s": first[n],
                    "weights_bytes": sizes[n], "same_as_fp32": float((outs[n] == outs[n.split(":")[0] + ":float32"]).float().mean())}
            log(f"  beam {k} batch {B}: " + ", ".join(f"{n} {res['rows'][f'{n}|beam{k}|batch{B}']['tok_s']:.0f}" for n in gens))
    return res


def limit_tok_s(res: dict, dtype: str, batch: int, beams: int) -> float:
    "Tokens/s the machine allows: weights read once per step (bandwidth), or the matmul peak, whichever binds."
    d = res["decode_bytes"][dtype]
    per_step_s = d["total"] / (res["bandwidth_gbs"] * 1e9)
    params = res["decode_bytes"]["float32"]["total"] / 4
    peak = res["peak_gflops"]["bf16" if dtype == "bf16" else "float32"] * 1e9
    compute_s = 2 * params * batch * beams / peak
    return batch / max(per_step_s, compute_s)


def table(res: dict) -> str:
    head = ("dtype    impl                 search  batch   tok/s  first-token  vs HF fp32  vs HF same dtype  "
            "limit tok/s  of limit  same tokens as fp32  weights MB")
    lines = [head, "-" * len(head)]
    twin_of = {"float32": "hf:float32", "bf16": "hf:bf16 weights", "int8": "hf:int8"}
    for key, r in res["rows"].items():
        name, beam, batch = key.split("|")
        impl, dtype = name.split(":")[0], name.split(":")[1].split(" ")[0]
        B, k = int(batch[5:]), int(beam[4:])
        base = res["rows"][f"hf:float32|{beam}|{batch}"]["tok_s"]
        same = res["rows"][f"{twin_of[dtype]}|{beam}|{batch}"]["tok_s"]
        lim = limit_tok_s(res, dtype, B, k) if impl == "textmtl" else None
        lines.append(f"{dtype:8} {name:20} {'greedy' if k == 1 else 'beam 4':7} {B:5} {r['tok_s']:7.0f}  {r['first_token_s'] * 1e3:8.0f} ms"
                     f"  {r['tok_s'] / base:9.2f}x  {r['tok_s'] / same:15.2f}x  "
                     + (f"{lim:11.0f}  {r['tok_s'] / lim:7.0%}" if lim else f"{'':11}  {'':7}")
                     + f"  {r['same_as_fp32']:18.0%}  {r['weights_bytes'] / 2**20:10.0f}")
    lines.append(f"memory bandwidth {res['bandwidth_gbs']:.1f} GB/s; matmul peak float32 {res['peak_gflops']['float32']:.0f}, "
                 f"bf16 {res['peak_gflops']['bf16']:.0f} GFLOP/s; weight bytes per decoding step: " +
                 ", ".join(f"{d} {v['total'] / 2**20:.1f} MB" for d, v in res["decode_bytes"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--json", help="write every measurement here")
    a = p.parse_args()
    r = run(reps=a.reps, new_tokens=a.new_tokens)
    print(table(r))
    if a.json: Path(a.json).write_text(json.dumps(r, indent=1))
