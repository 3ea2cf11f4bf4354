"""Shared pytest set-up: the offline datasets mirror and small thread counts for 2-core machines."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_mirror = ROOT.parent / "shared" / "datasets"
if "TEXTMTL_MIRROR" not in os.environ and _mirror.is_dir():
    os.environ["TEXTMTL_MIRROR"] = str(_mirror)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def mirror():
    m = os.environ.get("TEXTMTL_MIRROR")
    if not m or not Path(m).is_dir():
        pytest.skip("no datasets mirror (set TEXTMTL_MIRROR)")
    return Path(m)


def pytest_report_header(config):
    "Say at the top of the output what this machine cannot test, and how to fix it (rather than a quiet 's' later)."
    skips = []
    chromium = Path(os.environ.get("TEXTMTL_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        skips.append(f"the browser tests of the docs site and the app: no Chromium at {chromium} "
                     f"(install it: sudo apt-get install -y chromium; or set TEXTMTL_CHROMIUM to its path)")
    try: import playwright  # noqa: F401
    except ImportError: skips.append("the browser tests: playwright is not installed (pip install playwright)")
    m = os.environ.get("TEXTMTL_MIRROR")
    if not m or not Path(m).is_dir():
        skips.append("every test on real data (most of the suite): no datasets mirror; set TEXTMTL_MIRROR to it "
                     "(the Makefile uses ../shared/datasets when that folder exists)")
    if not skips: return ["textmtl: nothing will be skipped (datasets mirror, Chromium and playwright found)"]
    return ["textmtl: SKIPPING " + s for s in skips]
