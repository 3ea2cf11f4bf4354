"""What each serving dtype costs in quality on a trained run's own test split: `textmtl evaluate` metrics in float32,
bf16 and int8, how often greedy decoding writes the very same summary as float32, and summaries per second.
The numbers behind `textmtl.models.precision.DEFAULT_DTYPE` (the fastest dtype within 0.3 points of float32).

    python -m bench.dtype_quality --run runs/quick            # about 10 minutes on 2 cores for the quick run
    python -m bench.dtype_quality --run runs/quick --json /tmp/q.json --articles 100
"""
from __future__ import annotations

import json, sys, time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1])); __package__ = "bench"

DTYPES = ("float32", "bf16", "int8")
HEADLINE = ("summarization/rouge1", "summarization/rouge2", "summarization/rougeLsum", "emotion/micro_f1",
            "emotion/macro_f1", "topic/accuracy")


def _articles(run, n: int) -> list[str]:
    from textmtl.data.preprocessing import load_data_config
    from textmtl.run.folder import load_run
    r = load_run(run, device="cpu")
    path = Path(load_data_config(r.config.data_config).processed_dir) / "summarization" / "test.jsonl"
    with path.open(encoding="utf-8") as f: return [json.loads(l)["source"] for _, l in zip(range(n), f)]


def run(run_dir, articles: int = 100, dtypes=DTYPES, log=print) -> dict:
    import torch
    from textmtl.inference import Predictor
    from textmtl.run.evaluation import evaluate_run
    texts, res = _articles(run_dir, articles), {}
    for d in dtypes:
        t0 = time.perf_counter()
        m = evaluate_run(run_dir, "test", dtype=d, device="cpu")
        ev_s = time.perf_counter() - t0
        p = Predictor.from_run(run_dir, device="cpu", dtype=d)
        t0 = time.perf_counter()
        summaries = p.summarize(texts, num_beams=1, max_new_tokens=72, min_new_tokens=40, batch_size=8)
        gen_s = time.perf_counter() - t0
        res[d] = {"metrics": {k: m[k] for k in HEADLINE if k in m}, "evaluate_s": ev_s, "summaries": summaries,
                  "summaries_per_s": len(texts) / gen_s, "dtype": m.get("dtype")}
        log(f"{d}: " + ", ".join(f"{k.split('/')[1]} {v:.4f}" for k, v in res[d]["metrics"].items())
            + f"; {res[d]['summaries_per_s']:.2f} summaries/s ({len(texts)} articles, greedy, batch 8); evaluate {ev_s:.0f} s")
    base = res.get("float32")
    for d in res:
        if base is None: break
        res[d]["same_summary"] = sum(a == b for a, b in zip(res[d]["summaries"], base["summaries"])) / len(texts)
        res[d]["delta_points"] = {k: 100 * (v - base["metrics"][k]) if "rouge" not in k else v - base["metrics"][k]
                                  for k, v in res[d]["metrics"].items()}
        res[d]["within_0.3"] = all(abs(x) <= 0.3 for x in res[d]["delta_points"].values())
    return res


def table(res: dict) -> str:
    lines = [f"{'dtype':8} " + " ".join(f"{k.split('/')[1]:>10}" for k in HEADLINE) + "  same summary  summaries/s  within 0.3"]
    for d, r in res.items():
        lines.append(f"{d:8} " + " ".join(f"{r['metrics'].get(k, float('nan')) * (1 if 'rouge' in k else 100):10.2f}" for k in HEADLINE)
                     + f"  {r.get('same_summary', 1):12.0%}  {r['summaries_per_s']:11.2f}  {str(r.get('within_0.3', '')):>10}")
    return "\n".join(lines) + "\n(ROUGE in points as metrics.json writes it; F1 and accuracy x 100: every column in points)"


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/quick")
    p.add_argument("--articles", type=int, default=100, help="test articles for the agreement and speed columns")
    p.add_argument("--dtypes", default=",".join(DTYPES))
    p.add_argument("--json")
    a = p.parse_args()
    r = run(a.run, a.articles, tuple(a.dtypes.split(",")))
    print(table(r))
    if a.json: Path(a.json).write_text(json.dumps(r, indent=1))
