"""The app under load: 16 concurrent `/analyze` requests (a news paragraph, the page's defaults: 4 beams, 64 new
tokens, with the heatmap) against a trained run served on 127.0.0.1, one configuration after another: today's
defaults (`--dtype auto --batch-size 8`) against one request at a time in float32 (the app before batching and bf16).
Throughput (requests/s) and latency (p50/p95) per configuration.

    python -m bench.app_load --run runs/quick
"""
from __future__ import annotations

import socket, statistics, sys, threading, time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1])); __package__ = "bench"

CONFIGS = {"before: float32, one at a time": dict(dtype="float32", batch_size=1),
           "bf16, one at a time": dict(dtype="bf16", batch_size=1),
           "now: bf16, batches of 8": dict(dtype="bf16", batch_size=8)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def burst(url: str, n: int, text: str, beams: int = 4, new_tokens: int = 64) -> tuple[float, list[float], int]:
    "(wall seconds, per-request latencies, failures) of `n` requests sent at once."
    from gradio_client import Client
    clients = [Client(url, verbose=False) for _ in range(n)]         # connected first, as pages already open would be
    lat, fails, lock = [], [0], threading.Lock()
    def one(i):
        t0 = time.perf_counter()
        try: clients[i].predict(f"{text} ({i})", beams, new_tokens, api_name="/analyze")
        except Exception:
            with lock: fails[0] += 1
        with lock: lat.append(time.perf_counter() - t0)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    return time.perf_counter() - t0, sorted(lat), fails[0]


def run(run_dir, n: int = 16, configs=CONFIGS, log=print) -> dict:
    from textmtl.app import EXAMPLES, launch
    res = {}
    for name, kw in configs.items():
        port = _free_port()
        demo = launch(run_dir, host="127.0.0.1", port=port, device="cpu", block=False, queue_size=max(16, n), **kw)
        try:
            url = f"http://127.0.0.1:{port}/"
            burst(url, 2, EXAMPLES[0])                                      # warm-up
            wall, lat, fails = burst(url, n, EXAMPLES[0])
        finally: demo.close()
        res[name] = {"requests_per_s": n / wall, "p50_s": statistics.median(lat), "p95_s": lat[int(0.95 * (len(lat) - 1))],
                     "failures": fails, **kw}
        log(f"{name:34} {res[name]['requests_per_s']:5.2f} requests/s   p50 {res[name]['p50_s']:5.1f} s   "
            f"p95 {res[name]['p95_s']:5.1f} s   failures {fails}")
    return res


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/quick")
    p.add_argument("--requests", type=int, default=16)
    a = p.parse_args()
    r = run(a.run, a.requests)
    base = r[next(iter(r))]["requests_per_s"]
    for k, v in r.items(): print(f"{k:34} {v['requests_per_s'] / base:.2f}x the throughput of the first")
