"""The Gradio app in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

A tiny untrained run is written to a temporary folder, the app is started on 127.0.0.1 on a free port in a
background thread, and the browser types a text, clicks Submit, waits for the outputs and compares what the page
shows with what `Predictor` returns directly. It also checks that the page never asks for anything outside the
local server (no CDN fonts, no analytics), and saves a full-page screenshot (`app.png` in pytest's tmp folder; also
copied to $TEXTMTL_SCREENSHOT_DIR when that is set).
"""
import os, shutil, socket, time
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("TEXTMTL_CHROMIUM", "/usr/bin/chromium"))
EMOTIONS = ("admiration amusement anger annoyance approval caring confusion curiosity desire disappointment disapproval "
            "disgust embarrassment excitement fear gratitude grief joy love nervousness optimism pride realization relief "
            "remorse sadness surprise neutral").split()
LABELS = {"emotion": EMOTIONS, "topic": ["World", "Sports", "Business", "Sci/Tech"]}
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sync_playwright():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set TEXTMTL_CHROMIUM)")
    pw = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    return pw.sync_playwright


def _screenshot(page, shot: Path):
    "A full-page screenshot at `shot` (also copied to $TEXTMTL_SCREENSHOT_DIR when that is set)."
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    if os.environ.get("TEXTMTL_SCREENSHOT_DIR"):
        dst = Path(os.environ["TEXTMTL_SCREENSHOT_DIR"]); dst.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dst / shot.name)


def _add_snapshots(run):
    "Attention snapshots at three steps and a small history, as a training run leaves them (for the Training tab)."
    import json
    from textmtl.app import EXAMPLES
    from textmtl.inference import Predictor
    from textmtl.training.snapshots import capture_snapshot, save_snapshot
    from textmtl.utils.io import RunLayout
    lay, pred = RunLayout(run), Predictor.from_run(run, device="cpu")
    for step in (0, 50, 100):
        save_snapshot(lay.attention, capture_snapshot(pred.model, pred.tokenizer, EXAMPLES, step))
    lay.history.write_text("".join(json.dumps(r) + "\n" for r in
        [{"kind": "train", "step": s, "train/summarization/loss": 9 - s / 20} for s in (25, 50, 75, 100)]
        + [{"kind": "eval", "step": s, "val/loss": 5 - s / 50, "val/summarization/loss": 8 - s / 25} for s in (50, 100)]))


@pytest.fixture(scope="module")
def app(mirror, tmp_path_factory):
    import torch
    torch.set_num_threads(1)
    from textmtl.app import launch
    from textmtl.data.tokenization import Tokenizer
    from textmtl.inference import Predictor
    from textmtl.testing import write_tiny_run
    run = write_tiny_run(tmp_path_factory.mktemp("app") / "run", Tokenizer(), LABELS, thresholds={"emotion": 0.3})
    _add_snapshots(run)
    port = _free_port()
    demo = launch(run, host="127.0.0.1", port=port, device="cpu", block=False)
    try:
        yield f"http://127.0.0.1:{port}", Predictor.from_run(run, device="cpu")
    finally:
        demo.close()


def test_app_in_headless_chromium(sync_playwright, app, tmp_path):
    from textmtl.app import EXAMPLES, NONE_SHOWN
    url, pred = app
    text = EXAMPLES[0]
    # what the page must show: the app's defaults are 4 beams, 64 new tokens, the emotions at or above the run's
    # threshold (0.3 here), top 5 displayed
    want_summary = pred.summarize([text], num_beams=4, max_new_tokens=64)[0]
    want_emotions = pred.emotions([text])[0][:5]
    want_topic = pred.topic([text])[0]
    assert want_summary, "the tiny model's summary should not be empty"

    t0 = time.time()
    requests = []
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                   headless=True, args=FLAGS, viewport={"width": 1280, "height": 1000})
        try:
            page = ctx.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url + "/", wait_until="networkidle", timeout=30_000)
            assert page.title() == "textmtl"

            # an example fills the text box
            page.get_by_text(EXAMPLES[1][:30]).first.click()
            page.wait_for_function("t => document.querySelector('#input-text textarea').value === t", arg=EXAMPLES[1],
                                   timeout=10_000)

            page.locator("#input-text textarea").fill(text)
            page.locator("#submit-btn").click()
            page.wait_for_function(
                "() => { const s = document.querySelector('#summary textarea');"
                "        const i = document.querySelector('#attention img');"
                "        return s && s.value.length > 0 && i && i.complete && i.naturalWidth > 0; }", timeout=30_000)

            assert page.locator("#summary textarea").input_value() == want_summary

            names = page.locator("#emotions dl.label dt").all_inner_texts()
            percents = page.locator("#emotions dl.label dd").all_inner_texts()
            assert names == [n for n, _ in want_emotions]
            assert percents == [f"{round(p * 100)}%" for _, p in want_emotions]
            assert page.locator("#emotions [data-testid=label-output-value]").inner_text() == (want_emotions[0][0] if want_emotions else NONE_SHOWN)

            assert page.locator("#topic [data-testid=label-output-value]").inner_text() == want_topic["topic"]
            topic_rows = dict(zip(page.locator("#topic dl.label dt").all_inner_texts(),
                                  page.locator("#topic dl.label dd").all_inner_texts()))
            assert topic_rows == {k: f"{round(v * 100)}%" for k, v in want_topic["probabilities"].items()}

            size = page.evaluate("() => { const i = document.querySelector('#attention img');"
                                 " return [i.naturalWidth, i.naturalHeight]; }")
            assert size[0] > 300 and size[1] > 300, size

            _screenshot(page, tmp_path / "app.png")
        finally:
            ctx.close()

    outside = [u for u in requests if not u.startswith(url) and not u.startswith(("data:", "blob:"))]
    assert not outside, f"the page asked for resources outside the local server: {outside[:5]}"
    assert time.time() - t0 < 60


def test_training_tab_plays_the_snapshots(sync_playwright, app, tmp_path):
    url, _ = app
    caption = "document.querySelector('#snapshot-caption').innerText"
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                   headless=True, args=FLAGS, viewport={"width": 1280, "height": 1000})
        try:
            page = ctx.new_page()
            page.goto(url + "/", wait_until="networkidle", timeout=30_000)
            page.get_by_role("tab", name="Training").click()
            page.wait_for_function("() => { const i = document.querySelector('#snapshot-map img');"
                                   " return i && i.complete && i.naturalWidth > 300; }", timeout=20_000)
            assert "Step 100 of 100" in page.evaluate(f"() => {caption}")     # the last snapshot first
            page.locator("#play-btn").click()                                    # then from the first, in order
            page.wait_for_function(f"() => {caption}.includes('Step 0 of 100')", timeout=20_000)
            page.wait_for_function(f"() => {caption}.includes('Step 50 of 100')", timeout=20_000)
            page.wait_for_function(f"() => {caption}.includes('Step 100 of 100')", timeout=20_000)
            assert page.locator("#snapshot-summary textarea").input_value()
            _screenshot(page, tmp_path / "app_training.png")
        finally:
            ctx.close()
