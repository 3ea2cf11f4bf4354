"""The app under load, over HTTP on 127.0.0.1: concurrent requests through Gradio's queue, all answered, with the
latencies printed (p50/p95); an oversized text is refused at once with a clear message; a full queue refuses rather
than making callers wait without end. A tiny untrained run keeps it fast (what is measured is the serving path)."""
import socket, statistics, threading, time

import pytest

EMOTIONS = ["anger", "joy", "neutral", "sadness"]
LABELS = {"emotion": EMOTIONS, "topic": ["World", "Sports", "Business", "Sci/Tech"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, **kw):
    import torch
    torch.set_num_threads(1)
    from textmtl.app import launch
    from textmtl.data.tokenization import Tokenizer
    from textmtl.testing import write_tiny_run
    run = write_tiny_run(tmp_path / "run", Tokenizer(), LABELS)
    port = _free_port()
    return launch(run, host="127.0.0.1", port=port, device="cpu", block=False, **kw), f"http://127.0.0.1:{port}/"


def _burst(url, n, text="Markets fell on Tuesday after the central bank raised rates again."):
    from gradio_client import Client
    results, lock = [], threading.Lock()
    def one(i):
        t0 = time.perf_counter()
        try:
            out = Client(url, verbose=False).predict(f"{text} ({i})", 1, 8, api_name="/analyze")
            res = ("ok", time.perf_counter() - t0, out)
        except Exception as e:
            res = ("error", time.perf_counter() - t0, str(e))
        with lock: results.append(res)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads: t.start()
    for t in threads: t.join(timeout=180)
    return results


def _batcher(demo):
    return next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "analyze").batcher


def test_concurrent_requests_all_answered(mirror, tmp_path, batch_size=8):
    "Every request answered, in batches (the micro-batcher: fewer model calls than requests; one at a time: below)."
    demo, url = _serve(tmp_path, concurrency=1, queue_size=16, batch_size=batch_size)
    try:
        res = _burst(url, 12)
        assert len(res) == 12 and all(r[0] == "ok" for r in res), [r for r in res if r[0] != "ok"][:2]
        assert all(isinstance(r[2][0], str) for r in res)                    # a summary for each
        lat = sorted(r[1] for r in res)
        p50, p95 = statistics.median(lat), lat[int(0.95 * (len(lat) - 1))]
        sizes = _batcher(demo).sizes if batch_size > 1 else [1] * 12
        assert sum(sizes) == 12 and (batch_size == 1 or max(sizes) > 1), sizes
        print(f"\napp load test: 12 concurrent requests, batch size {batch_size}, all answered in {len(sizes)} model calls; "
              f"latency p50 {p50:.2f} s, p95 {p95:.2f} s")
    finally:
        demo.close()


def test_input_cap_and_full_queue(mirror, tmp_path):
    from gradio_client import Client
    demo, url = _serve(tmp_path, max_chars=500, concurrency=1, queue_size=1, batch_size=1)
    try:
        t0 = time.perf_counter()
        with pytest.raises(Exception) as e:
            Client(url, verbose=False).predict("word " * 2000, 1, 8, api_name="/analyze")
        assert "at most 500" in str(e.value) and time.perf_counter() - t0 < 30
        res = _burst(url, 6)
        refused = [r for r in res if r[0] == "error"]
        assert len(res) == 6 and any(r[0] == "ok" for r in res)
        assert refused and all("queue" in r[2].lower() and "full" in r[2].lower() for r in refused), refused[:2]
    finally:
        demo.close()
