"""The app under load, over HTTP on 127.0.0.1: concurrent requests through Gradio's queue, all answered, with the
latencies printed (p50/p95); an oversized text is refused at once with a clear message; a full queue refuses rather
than making callers wait without end; uploads and bodies over the limit are refused before they are read; answers
leave no files behind. A tiny untrained run keeps it fast (what is measured is the serving path)."""
import socket, statistics, threading, time

import pytest

EMOTIONS = ["anger", "joy", "neutral", "sadness"]
LABELS = {"emotion": EMOTIONS, "topic": ["World", "Sports", "Business", "Sci/Tech"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, run_kw=None, **kw):
    import torch
    torch.set_num_threads(1)
    from textmtl.app import launch
    from textmtl.data.tokenization import Tokenizer
    from textmtl.testing import write_tiny_run
    run = write_tiny_run(tmp_path / "run", Tokenizer(), LABELS, **(run_kw or {}))
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


def test_api_answers_every_decoder_task(mirror, tmp_path, monkeypatch):
    "A run with a headline besides the summary: /analyze answers (summary, headline, emotions, topic, heatmap), the page's settings decoding the summary and the run's the headline."
    from gradio_client import Client
    from textmtl import tasks
    from textmtl.inference import Predictor
    monkeypatch.setitem(tasks.REGISTRY, "headline", tasks.Seq2SeqTask(    # registered for this test only
        "headline", short="hed", source_field="text", target_field="headline", description="a **headline**"))
    run_kw = dict(tasks=["summarization", "headline", "emotion", "topic"],
                  config={"evaluation": {"headline": {"max_new_tokens": 4, "num_beams": 1}}})
    demo, url = _serve(tmp_path, run_kw=run_kw, batch_size=4)
    try:
        text = "Markets fell on Tuesday after the central bank raised rates again."
        summary, headline, emotions, topic, heat = Client(url, verbose=False).predict(text, 2, 16, api_name="/analyze")
        pred = Predictor.from_run(tmp_path / "run", device="cpu")
        assert summary == pred.summarize([text], num_beams=2, max_new_tokens=16)[0]
        assert headline == pred.summarize([text], task="headline")[0] and 0 < len(headline.split()) <= 4, headline
        assert topic["label"] in LABELS["topic"] and str(heat.get("url")).startswith("data:image/png;base64,"), (topic, str(heat)[:80])
    finally:
        demo.close()


def _raw(url, head: bytes, body: bytes = b"", timeout: float = 10) -> bytes:
    "Send a raw HTTP request (headers, then `body`, no more) and return the start of the answer."
    host, port = url.split("//")[1].strip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head + body)
        return s.recv(4096)


def test_no_uploads_and_a_body_limit(mirror, tmp_path):
    "Uploads are refused (the app takes no files); a body over the limit is refused before it is read, declared or chunked."
    import httpx
    demo, url = _serve(tmp_path, max_chars=500, batch_size=1)
    try:
        r = httpx.post(url + "gradio_api/upload", files={"files": ("a.txt", b"x" * 10_000)}, timeout=10)
        assert r.status_code == 403 and "no files" in r.text, (r.status_code, r.text[:200])
        # 50 MB announced, none of it sent: answered at once (a server reading the body first would wait for it)
        head = b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        t0 = time.perf_counter()
        assert _raw(url, head + b"Content-Length: 50000000\r\n\r\n", timeout=5).startswith(b"HTTP/1.1 413")
        assert time.perf_counter() - t0 < 5
        # chunked, without a length: read only up to the limit, then refused (the rest is never sent)
        from textmtl.app import max_request_bytes
        limit, chunk = max_request_bytes(500), b"x" * 16_384
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit // len(chunk) + 1))
        assert _raw(url, head + b"Transfer-Encoding: chunked\r\n\r\n", chunks, timeout=5).startswith(b"HTTP/1.1 413")
        # and a text within the cap is still answered (through the same middleware)
        from gradio_client import Client
        assert isinstance(Client(url, verbose=False).predict("Rates rose again.", 1, 8, api_name="/analyze")[0], str)
    finally:
        demo.close()


def test_answers_leave_no_files(mirror, tmp_path, monkeypatch):
    "The heatmap comes inline (a PNG data URL): answering writes nothing into Gradio's cache folder."
    from gradio_client import Client
    cache = tmp_path / "gradio_cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    demo, url = _serve(tmp_path, batch_size=1)
    try:
        files = lambda: sorted(str(p) for p in cache.rglob("*") if p.is_file())
        before, client = files(), Client(url, verbose=False, download_files=False)
        outs = [client.predict(f"Markets fell on day {i} after the central bank raised rates.", 1, 8, api_name="/analyze")
                for i in range(3)]
        assert all(isinstance(o[-1], dict) and str(o[-1].get("url")).startswith("data:image/png;base64,") for o in outs), \
            [str(o[-1])[:120] for o in outs]
        assert files() == before, files()
    finally:
        demo.close()
