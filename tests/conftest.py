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
