#!/usr/bin/env python3
"""Convert between notebooks and a plain-text "percent" form, for editing notebooks with a text editor.

    python tools/nbpy.py to-nb  drafts/03_preprocessing.py nbs/03_preprocessing.ipynb
    python tools/nbpy.py to-py  nbs/03_preprocessing.ipynb drafts/03_preprocessing.py

The notebook in `nbs/` is the source of truth; the text form is a convenience. Cells start with
`# %%` (code) or `# %% [markdown]` (markdown; each line is prefixed with `# `). Run `nbdev_clean`
afterwards so the notebook is committed in nbdev's clean form.
"""
import json, sys
from pathlib import Path


def py_to_cells(text):
    cells, kind, buf = [], None, []

    def flush():
        if kind is None: return
        lines = list(buf)
        while lines and not lines[-1].strip(): lines.pop()
        while lines and not lines[0].strip(): lines.pop(0)
        if kind == "markdown":
            lines = [l[2:] if l.startswith("# ") else (l[1:] if l.startswith("#") else l) for l in lines]
        src = "\n".join(lines)
        cell = {"cell_type": kind, "metadata": {}, "source": src.splitlines(keepends=True)}
        if kind == "code": cell.update(execution_count=None, outputs=[])
        cells.append(cell)

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, buf = ("markdown" if "[markdown]" in line else "code"), []
        else:
            if kind is None: kind = "code"
            buf.append(line)
    flush()
    return cells


def to_nb(src, dst):
    nb = {"cells": py_to_cells(Path(src).read_text(encoding="utf-8")),
          "metadata": {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    Path(dst).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def to_py(src, dst):
    nb = json.loads(Path(src).read_text(encoding="utf-8"))
    out = []
    for c in nb["cells"]:
        s = "".join(c["source"])
        if c["cell_type"] == "markdown":
            out.append("# %% [markdown]\n" + "\n".join(("# " + l) if l else "#" for l in s.splitlines()))
        else:
            out.append("# %%\n" + s)
    Path(dst).write_text("\n\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("to-nb", "to-py"):
        sys.exit(__doc__)
    (to_nb if sys.argv[1] == "to-nb" else to_py)(sys.argv[2], sys.argv[3])
