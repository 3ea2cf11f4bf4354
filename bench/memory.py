"""Peak memory of a training step and of generation, each measured in its own process.

CPU: peak resident set size (Linux VmHWM, reset through /proc/self/clear_refs) over the steady state after one
warm-up call (weights, gradients freed, AdamW state allocated); glibc is told to mmap every allocation of 64 KiB or
more so that freed tensors really leave the RSS. CUDA: `torch.cuda.max_memory_allocated` over `memory_allocated`."""
from __future__ import annotations

import argparse, json, os, re, subprocess, sys

from .common import ROOT


def _status() -> dict:
    s = open("/proc/self/status").read()
    return {k: int(re.search(rf"{k}:\s+(\d+)", s).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}


def _worker(impl: str, what: str, size_name: str, config, device: str, threads) -> dict:
    import gc, torch
    if threads: torch.set_num_threads(threads)
    from .common import build_pair, load_size, make_batches, get_tokenizer
    from . import train_step, generation
    size = load_size(size_name, device, config=config)
    hf, ours = build_pair(size, device)
    model = hf if impl == "hf" else ours
    if impl == "hf": del ours
    else: del hf
    gc.collect()
    batches = make_batches(size, get_tokenizer(), device)
    b = batches["summarization"]
    if what == "train":
        fn = (train_step.hf_step_fn(model, b) if impl == "hf" else train_step.ours_step_fn(model, "summarization", b))
    else:
        k = 1 if what == "greedy" else int(what.replace("beam", ""))
        N = size.max_new_tokens
        model.eval()
        if impl == "hf":
            gc_ = generation.hf_generation_config(N, k)
            fn = lambda: model.generate(input_ids=b["input_ids"], attention_mask=b["attention_mask"], generation_config=gc_)
        else:
            fn = lambda: model.generate(b["input_ids"], b["attention_mask"], max_new_tokens=N, num_beams=k, min_new_tokens=N)
    ctx = torch.inference_mode if what != "train" else torch.enable_grad
    with ctx(): fn()                                             # warm-up: optimizer state, lazy inits
    gc.collect()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f: f.write("5")
        base = _status()["VmRSS"]
    with ctx(): fn()
    if cuda:
        torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated()
    else:
        peak = _status()["VmHWM"]
    return {"impl": impl, "what": what, "baseline_bytes": base, "peak_bytes": peak, "delta_bytes": peak - base,
            "kind": "cuda max_memory_allocated" if cuda else "RSS (VmHWM)"}


def measure(impl: str, what: str, size_name: str, config=None, device="cpu", threads=None, timeout=900) -> dict:
    "Run one measurement in a fresh Python process; returns the worker's dict."
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "bench.memory", "--impl", impl, "--what", what, "--size", size_name, "--device", device]
    if config: cmd += ["--config", str(config)]
    if threads: cmd += ["--threads", str(threads)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0: raise RuntimeError(f"memory worker {impl}/{what} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run(size_name: str, config=None, device="cpu", threads=None, whats=("train", "greedy", "beam4")) -> dict:
    "Peak memory per (what, implementation) and the textmtl/HF ratio of the step deltas."
    out = {}
    for what in whats:
        r = {impl: measure(impl, what, size_name, config, device, threads) for impl in ("hf", "textmtl")}
        r["ratio_delta"] = r["textmtl"]["delta_bytes"] / max(1, r["hf"]["delta_bytes"])
        r["ratio_peak"] = r["textmtl"]["peak_bytes"] / max(1, r["hf"]["peak_bytes"])
        out[what] = r
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--impl", choices=("hf", "textmtl"), required=True)
    p.add_argument("--what", default="train")
    p.add_argument("--size", default="quick")
    p.add_argument("--config")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    print(json.dumps(_worker(a.impl, a.what, a.size, a.config, a.device, a.threads)))
