"""The offline docs site: build a small one, check its HTML, then open it in headless Chromium.

The site is built from `index` (the real `nbs/index.ipynb`, or a placeholder when it does not exist yet),
`00_config` when it exists, and a tiny fixture notebook written here that has what the real chapters may not
have at any given moment: a matplotlib figure, inline and display math, a callout, a hidden cell and an
exported function (so an API entry). Notebooks are executed for real, as `textmtl docs` does.
"""
import http.server, json, os, re, shutil, subprocess, sys, threading, time
from functools import partial
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
KERNEL = {"display_name": "python3", "language": "python", "name": "python3"}

FIXTURE_CELLS = [
    ("markdown", "# Plots and math\n\n> A fixture chapter with a figure, an equation and an API entry."),
    ("code", "#| default_exp fixture"),
    ("code", "#| hide\nfrom fastcore.test import *"),
    ("markdown", "Euler: $e^{i\\pi} + 1 = 0$, and a display equation:\n\n"
                 "$$\\mathrm{softmax}(x)_i = \\frac{e^{x_i}}{\\sum_j e^{x_j}}$$\n\n"
                 "::: {.callout-note}\nA callout that must become an admonition.\n:::"),
    ("code", '#| export\ndef scaled_sum(xs: list[float], scale: float = 2.0) -> float:\n'
             '    "Sum `xs` and multiply by `scale` (fixture API entry)."\n    return scale * sum(xs)'),
    ("code", 'test_eq(scaled_sum([1, 2]), 6.0)\nprint("printed output line")'),
    ("code", 'import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(4, 3))\n'
             'ax.plot([0, 1, 2], [0, 1, 4], marker="o")\nax.set_title("fixture plot")\nplt.show()'),
    ("code", '#| hide\nHIDDEN_MARKER = "this cell must not appear"'),
]

PLACEHOLDER_INDEX = [
    ("markdown", "# textmtl\n\n> Placeholder home page (nbs/index.ipynb does not exist yet)."),
    ("code", "#| hide\nfrom textmtl import __version__"),
    ("markdown", "Welcome to the **textmtl** docs."),
]


def write_nb(path, cells):
    nb = {"cells": [], "metadata": {"kernelspec": KERNEL}, "nbformat": 4, "nbformat_minor": 5}
    for i, (kind, src) in enumerate(cells):
        c = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": src}
        if kind == "code": c.update(execution_count=None, outputs=[])
        nb["cells"].append(c)
    path.write_text(json.dumps(nb, indent=1))
    return path


class Links(HTMLParser):
    "Collect (href, text) of the links inside the primary sidebar navigation (`nav.bd-docs-nav`)."
    def __init__(self):
        super().__init__(); self.depth, self.links, self._a = 0, [], None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "nav" and "bd-docs-nav" in (a.get("class") or ""): self.depth = 1
        elif self.depth and tag == "nav": self.depth += 1
        if self.depth and tag == "a": self._a = [a.get("href"), ""]
    def handle_endtag(self, tag):
        if self.depth and tag == "nav": self.depth -= 1
        if tag == "a" and self._a is not None:
            self.links.append((self._a[0], " ".join(self._a[1].split()))); self._a = None
    def handle_data(self, data):
        if self._a is not None: self._a[1] += data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from textmtl.docs import build_docs
    tmp = tmp_path_factory.mktemp("docs")
    index = NBS / "index.ipynb" if (NBS / "index.ipynb").exists() else write_nb(tmp / "index.ipynb", PLACEHOLDER_INDEX)
    nbs = [index, write_nb(tmp / "99_fixture.ipynb", FIXTURE_CELLS)]
    if (NBS / "00_config.ipynb").exists(): nbs.append(NBS / "00_config.ipynb")
    t0 = time.time()
    res = build_docs(tmp / "site", execute=True, nbs=nbs, timeout=300, project=ROOT, verbose=False)
    res.total_seconds = time.time() - t0
    print(f"docs subset built in {res.total_seconds:.1f} s: {res.seconds}")
    return res


def test_navigation_in_notebook_order(built):
    site = built.out_dir
    has_config = (NBS / "00_config.ipynb").exists()
    expected = ["index"] + (["config"] if has_config else []) + ["fixture"]
    assert built.pages == expected
    p = Links(); p.feed((site / "fixture.html").read_text())
    hrefs = [h for h, _ in p.links]
    assert hrefs == [f"{n}.html" if n != "fixture" else "#" for n in expected], p.links
    assert p.links[-1][1] == "Plots and math"
    if has_config: assert p.links[1][1] == "Configuration"


def test_api_entries_of_exported_symbols(built):
    html = (built.out_dir / "fixture.html").read_text()
    # show_doc entry: anchor nbdev links to, the name, the signature and the docstring
    assert '<span id="scaled_sum"></span>' in html
    assert re.search(r'<p class="rubric"[^>]*>scaled_sum</p>', html)
    assert "fixture API entry" in html and "scale" in html
    if (NBS / "00_config.ipynb").exists():
        cfg = (built.out_dir / "config.html").read_text()
        assert '<span id="load_config"></span>' in cfg and re.search(r'class="rubric"[^>]*>load_config<', cfg)


def test_outputs_math_and_hidden_cells(built):
    site = built.out_dir
    html = (site / "fixture.html").read_text()
    assert "printed output line" in html                      # executed: stdout rendered
    assert "HIDDEN_MARKER" not in html and "#| export" not in html and "#|" not in html
    assert 'class="admonition note"' in html                  # Quarto callout -> admonition
    assert "\\(e^{i\\pi} + 1 = 0\\)" in html                  # inline math handed to MathJax
    assert 'class="math notranslate nohighlight"' in html
    assert re.search(r'<script[^>]+src="_static/mathjax/tex-chtml.js', html), "MathJax must be served locally"
    assert (site / "_static/mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff").is_file()
    imgs = re.findall(r'<img[^>]+src="(_images/[^"]+\.png)"', html)
    assert imgs, "the matplotlib figure must be rendered as an image"
    assert (site / imgs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (site / imgs[0]).stat().st_size > 5000


def test_site_is_self_contained(built):
    "No page loads a script, stylesheet or font from the network."
    for page in built.out_dir.glob("*.html"):
        text = page.read_text()
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not remote, f"{page.name} loads {remote}"


def test_readme_from_index(tmp_path):
    from textmtl.docs import build_readme
    index = NBS / "index.ipynb" if (NBS / "index.ipynb").exists() else write_nb(tmp_path / "index.ipynb", PLACEHOLDER_INDEX)
    out = build_readme(index, tmp_path / "README.md")
    text = out.read_text()
    first_md = next(c for c in json.loads(index.read_text())["cells"] if c["cell_type"] == "markdown")
    title = "".join(first_md["source"]).splitlines()[0]
    assert title.startswith("# ") and title in text
    assert "#|" not in text and "from textmtl import __version__" not in text


# ----------------------------------------------------------------------------------------------- browser
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


class _Handler(http.server.SimpleHTTPRequestHandler):
    seen = []
    def log_message(self, fmt, *args): pass
    def send_response(self, code, message=None):
        type(self).seen.append((self.path, code)); super().send_response(code, message)


@pytest.fixture(scope="module")
def server(built):
    _Handler.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(built.out_dir)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True); t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown(); httpd.server_close()


def chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,900",
           "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)")
def test_page_renders_in_headless_chromium(built, server, tmp_path):
    url = f"{server}/fixture.html"
    r = chromium(tmp_path, "--dump-dom", url)
    dom = r.stdout
    assert "Plots and math" in dom and "printed output line" in dom, r.stderr[-2000:]
    assert "<mjx-container" in dom, "MathJax did not typeset the math"
    assert dom.count("<mjx-container") >= 2                   # inline and display equation
    assert 'display="true"' in dom                           # the $$...$$ one is typeset as display math
    missing = [(p, c) for p, c in _Handler.seen if c >= 400 and "favicon" not in p]
    assert not missing, f"assets that failed to load: {missing}"
    assert any("mathjax/output/chtml/fonts" in p for p, c in _Handler.seen), "MathJax fonts were not fetched"

    shot = tmp_path / "fixture.png"
    r = chromium(tmp_path, f"--screenshot={shot}", url)
    assert shot.is_file(), r.stderr[-2000:]
    import matplotlib.image as mpimg
    img = mpimg.imread(str(shot))                             # float RGB(A) in [0, 1]
    assert img.shape[:2] == (900, 1280)
    rgb = img[..., :3]
    assert rgb.std() > 0.05, "the screenshot is (nearly) blank"
    dark = (rgb.mean(axis=2) < 0.5).mean()
    assert 0.005 < dark < 0.6, f"unexpected share of dark pixels {dark:.3f}"
    keep = os.environ.get("TEXTMTL_DOCS_SCREENSHOT")          # e.g. to look at it: TEXTMTL_DOCS_SCREENSHOT=/tmp/s.png
    if keep: shutil.copy(shot, keep)
