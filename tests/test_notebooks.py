"""Every notebook in nbs/ is a test: run each one with `nbdev_test`, the way a developer does.

Each notebook runs in its own process so that one notebook's state (torch threads, imported modules,
temporary files) cannot leak into the next, and a failure names the notebook.
"""
import os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_"))


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook(nb):
    nbdev_test = Path(sys.executable).parent / "nbdev_test"
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    r = subprocess.run([str(nbdev_test), "--path", f"nbs/{nb}", "--n_workers", "0", "--do_print"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"{nb} failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
