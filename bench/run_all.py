"""Run every benchmark side by side (textmtl vs transformers BART, same config and weights) and print the ratios.

    python -m bench.run_all                       # quick and default sizes, on CUDA when present
    python -m bench.run_all --sizes quick --reps 5 --json bench/results.json
    python -m bench.run_all --only train,gen --profile

Each benchmark alternates HF and textmtl repetitions after a warm-up and reports medians, so both see the same
machine load. See bench/README.md for what each row means.
"""
from __future__ import annotations

import argparse, json, os, platform, sys, time
from pathlib import Path

if __package__ in (None, ""):                                    # `python bench/run_all.py` works too
    sys.path.insert(0, str(Path(__file__).resolve().parents[1])); __package__ = "bench"

import torch

from bench import data_path, flops, generation, memory, profile_textmtl, train_step
from bench.common import build_pair, free, get_tokenizer, load_size, make_batches, raw_items

ALL = ("train", "gen", "data", "memory", "flops")


def _mb(x): return f"{x / 2**20:,.0f} MB"
def _ms(x): return f"{x * 1e3:,.1f} ms"
def _yn(x): return "-" if x is None else ("yes" if x else "NO")


def run_size(name: str, device: str, reps=None, config=None, only=ALL, profile=False, threads=None,
             variants=False, log=print) -> dict:
    "Every selected benchmark for one size; returns the results dict (rows for the table under 'rows')."
    size = load_size(name, device, reps, config)
    log(f"== {name}: model {size.model} | batch {size.batch} x src {size.src_len} / tgt {size.tgt_len}, "
        f"classification {size.cls_batch} x {size.cls_len}, {size.max_new_tokens} new tokens, {size.reps} reps "
        f"[{size.source}]")
    for n in size.notes: log(f"   note: {n}")
    t0 = time.perf_counter()
    hf, ours = build_pair(size, device)
    tok = get_tokenizer()
    batches = make_batches(size, tok, device)
    res = {"size": size.__dict__, "rows": [], "data_source": "mirror" if tok is not None and raw_items(1) else "random ids"}
    rows = res["rows"]
    step_s = {}
    if "train" in only:
        r = res["train"] = train_step.run(size, hf, ours, batches, device, variants=variants, matmul="flops" in only)
        m = r["median_s"]
        step_s = {"summarization": m["textmtl"], "emotion": m.get("textmtl:emotion"), "topic": m.get("textmtl:topic")}
        rows.append([name, "train step, summarization (s)", f"{m['hf']:.3f}", f"{m['textmtl']:.3f}",
                     f"{r['ratio']:.2f}x", "<= 0.80x", _yn(r["met"])])
        for k, v in m.items():
            if k.startswith("textmtl:"):
                rows.append([name, f"  {k[8:]} (textmtl only)", "", f"{v:.3f}", f"{v / m['hf']:.2f}x of HF sum", "", ""])
        log(f"   train: losses hf {r['loss_hf']:.5f} textmtl {r['loss_textmtl']:.5f} packed {r['loss_packed']}; "
            f"medians {', '.join(f'{k} {v:.3f}' for k, v in m.items())}")
    if "gen" in only:
        r = res["generation"] = generation.run(size, hf, ours, batches, device, variants=variants)
        for k in ("beam1", "beam4"):
            g = r[k]
            rows.append([name, f"generate {'greedy' if k == 'beam1' else 'beam 4'} (tok/s)",
                         f"{g['tokens_per_s']['hf']:,.0f}", f"{g['tokens_per_s']['textmtl']:,.0f}", f"{g['ratio']:.2f}x",
                         ">= 1.50x", _yn(g["met"])])
            rows.append([name, f"  outputs identical ({k})", "", "", f"{g['rows_identical']}/{r['batch']} rows",
                         "identical" if k == "beam1" else "", _yn(g["identical"]) if k == "beam1" else
                         ("yes" if g["identical"] else "no")])
            if "onednn_off" in g:
                o = g["onednn_off"]
                rows.append([name, f"  onednn_off (textmtl only, {k})", "", f"{o['tokens_per_s']:,.0f}",
                             f"{o['ratio']:.2f}x of HF", "", f"{o['rows_identical']}/{r['batch']} same"])
    if "data" in only and tok is not None and step_s:
        items = raw_items(max(size.batch, size.cls_batch) * 4)
        if items:
            r = res["data_path"] = data_path.run(size, tok, items, step_s)
            for k, v in r.items():
                if isinstance(v, dict):
                    rows.append([name, f"data {k} (per batch)", "", _ms(v["median_s"]),
                                 "-" if v["share"] is None else f"{100 * v['share']:.1f}% of step", "< 5%", _yn(v["met"])])
    if "flops" in only and step_s:
        r = res["flops"] = flops.run(size, ours, batches, {"hf": res["train"]["median_s"]["hf"],
                                                           "textmtl": res["train"]["median_s"]["textmtl"]}, device,
                                   res["train"]["matmul_s"])
        rows.append([name, f"matmul peak fp32 {r['peak']['n']}^2 (GFLOP/s)", "", "", f"{r['peak']['flops_per_s'] / 1e9:,.1f}", "", ""])
        rows.append([name, "train step FLOP/s (GFLOP/s)", f"{r['hf']['flops_per_s'] / 1e9:,.1f}",
                     f"{r['textmtl']['flops_per_s'] / 1e9:,.1f}",
                     f"{100 * r['textmtl']['fraction_of_peak']:.0f}% of peak", "", ""])
        log(f"   flops: {r['flops']['total'] / 1e9:,.1f} GFLOP per step (attention {r['flops']['attention_total'] / 1e9:,.1f}); "
            f"FlopCounterMode saw {r['flop_counter'] / 1e9:,.1f} GFLOP"
            f"{' (CPU SDPA not counted)' if device == 'cpu' else ''}")
    if profile:
        p = res["profile"] = {"train": profile_textmtl.profile_train(ours, batches, device),
                              "greedy": profile_textmtl.profile_generate(ours, batches, size, device)}
        log(f"   profile of textmtl training step, ms per step by phase: "
            + ", ".join(f"{k[6:]} {v:.1f}" for k, v in p["train"]["phases_ms"].items()))
        log(p["train"]["table"]); log(p["greedy"]["table"])
    free(hf, ours)
    if "memory" in only:
        r = res["memory"] = memory.run(name, config, device, threads)
        for what, v in r.items():
            rows.append([name, f"peak memory {what}: step delta", _mb(v["hf"]["delta_bytes"]),
                         _mb(v["textmtl"]["delta_bytes"]), f"{v['ratio_delta']:.2f}x", "", ""])
            rows.append([name, f"  {what}: process peak ({v['hf']['kind']})", _mb(v["hf"]["peak_bytes"]),
                         _mb(v["textmtl"]["peak_bytes"]), f"{v['ratio_peak']:.2f}x", "", ""])
    res["seconds"] = time.perf_counter() - t0
    log(f"   ({res['seconds']:.0f} s)")
    return res


def run_bert2bert(device: str, reps=None, log=print) -> dict:
    "The warm-started quick.yaml model (copy off) against its transformers EncoderDecoderModel twin (bench/bert2bert.py)."
    from bench import bert2bert
    import yaml
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1]/"configs/training/quick.yaml").read_text())
    d = cfg.get("data") or {}
    r = bert2bert.run(reps=reps or 3, decoder_layers=int((cfg.get("model") or {}).get("decoder_layers", 6)),
                      batch=int((d.get("batch_size") or {}).get("summarization", 8)),
                      src_len=int(d.get("max_source_length", 144)), tgt_len=int(d.get("max_target_length", 48)),
                      device=device, log=log)
    t = r["train"]
    rows = [["bert2bert", "train step, summarization (s)", f"{t['median_s']['hf']:.3f}", f"{t['median_s']['textmtl']:.3f}",
             f"{t['ratio']:.2f}x", "<= 0.80x", _yn(t["met"])]]
    b = r.get("bf16") or {}
    if "median_s" in b:
        m = b["median_s"]
        rows.append(["bert2bert", "train step, float32 (textmtl only)", "", f"{m['textmtl:float32']:.3f}", "", "", ""])
        rows.append(["bert2bert", "train step, bf16: vs textmtl float32", "", f"{m['textmtl:bf16']:.3f}",
                     f"{b['ratio_fp32']:.2f}x of fp32", "<= 0.70x", _yn(b["ratio_fp32"] <= 0.7)])
        rows.append(["bert2bert", "train step, bf16: vs twin bf16 autocast", f"{m['hf:autocast']:.3f}", f"{m['textmtl:bf16']:.3f}",
                     f"{b['ratio_twin']:.2f}x", "<= 0.60x", _yn(b["ratio_twin"] <= 0.6)])
        rows.append(["bert2bert", "train step, plain autocast (textmtl only)", "", f"{m['textmtl:autocast']:.3f}", "", "", ""])
    elif b: rows.append(["bert2bert", f"train step, bf16: skipped ({b['skipped']})", "", "", "", "", ""])
    for k in ("beam1", "beam4"):
        g = r[k]
        rows.append(["bert2bert", f"generate {'greedy' if k == 'beam1' else 'beam 4'} (tok/s)",
                     f"{g['tokens_per_s']['hf']:,.0f}", f"{g['tokens_per_s']['textmtl']:,.0f}", f"{g['ratio']:.2f}x",
                     ">= 1.50x", _yn(g["met"])])
        rows.append(["bert2bert", f"  outputs identical ({k})", "", "", "", "identical" if k == "beam1" else "",
                     _yn(g["identical"])])
    return {**r, "rows": rows, "size": {"notes": []}}


def format_table(rows) -> str:
    head = ["size", "benchmark", "HF", "textmtl", "ratio (textmtl/HF)", "target", "met"]
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w[i]) if i < 2 else str(c).rjust(w[i]) for i, c in enumerate(r))
    return "\n".join([line(head), line(["-" * x for x in w])] + [line(r) for r in rows])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    p.add_argument("--sizes", default="quick,default,bert2bert",
                   help="comma-separated: quick (from-scratch BART sizes of scratch.yaml), default (bart-base sizes), "
                        "bert2bert (the warm-started quick.yaml model vs its EncoderDecoderModel twin); tiny: smoke tests")
    p.add_argument("--reps", type=int, help="timed repetitions per benchmark (default: 3 on CPU, 5 on CUDA)")
    p.add_argument("--config", help="a training YAML to take the sizes from (only with one size)")
    p.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument("--profile", action="store_true", help="also torch.profiler the textmtl step and greedy generation")
    p.add_argument("--variants", action="store_true",
                   help="also time textmtl variants (legacy_step: full logits + plain AdamW, no oneDNN; onednn_off: "
                        "today's step and generation with the oneDNN linears off; the config's own arch)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--json", help="write all results to this JSON file")
    a = p.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if a.threads: torch.set_num_threads(a.threads)
    sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
    if a.config and len(sizes) != 1: p.error("--config needs exactly one --sizes entry")
    only = tuple(s.strip() for s in a.only.split(","))
    bad = set(only) - set(ALL)
    if bad: p.error(f"--only: unknown {sorted(bad)}; choose from {','.join(ALL)}")
    import transformers
    env = {"device": device, "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
           "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "transformers": transformers.__version__,
           "load": os.getloadavg() if hasattr(os, "getloadavg") else None}
    print(f"textmtl bench on {device}{' (' + env['gpu'] + ')' if env['gpu'] else ''}: torch {env['torch']}, "
          f"transformers {env['transformers']}, {env['threads']} threads, load average {env['load']}")
    results = {"env": env, "sizes": {}}
    rows = []
    for s in sizes:
        if s == "bert2bert":
            r = run_bert2bert(device, a.reps)
            results["sizes"][s] = r; rows += r["rows"]
            continue
        r = run_size(s, device, a.reps, a.config, only, a.profile, a.threads, a.variants)
        results["sizes"][s] = r; rows += r["rows"]
    print()
    print(format_table(rows))
    for s in sizes:
        for n in results["sizes"][s]["size"]["notes"]: print(f"note: {n}")
    results["table"] = format_table(rows)
    if a.json:
        out = Path(a.json); out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=lambda o: o.__dict__ if hasattr(o, "__dict__") else str(o)))
        os.replace(tmp, out)
        print(f"results written to {out}")
    return results


if __name__ == "__main__":
    main()
