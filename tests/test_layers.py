"""The package's layers import downward only, with no cycle (index.ipynb, "How the code is layered").

Read from the source with `ast`: every `import textmtl...` / `from textmtl... import` / relative import, at module level
or inside a function, is an edge. A module may import modules of its own layer or of lower ones; within a layer the
edges must not form a cycle. `import textmtl.inference` must not load the training stack.
"""
import ast, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "textmtl"

# lowest first; a module belongs to the first layer with a matching name (exact, or a package prefix ending in '.')
LAYERS = [
    ("core", ["textmtl", "textmtl.config", "textmtl.utils.", "textmtl._modidx",   # and the (empty) package files:
              "textmtl.data", "textmtl.models", "textmtl.run", "textmtl.training"]),
    ("data", ["textmtl.data.tokenization", "textmtl.data.detokenize", "textmtl.data.download", "textmtl.data.dataset",
              "textmtl.data.batching", "textmtl.data.dataloader", "textmtl.data.books"]),
    ("metrics", ["textmtl.training.metrics"]),
    ("tasks", ["textmtl.tasks"]),
    ("prepare", ["textmtl.data.preprocessing"]),
    ("models", ["textmtl.models."]),
    ("views", ["textmtl.visualize"]),
    ("run", ["textmtl.run."]),
    ("training", ["textmtl.training."]),
    ("serve", ["textmtl.inference", "textmtl.export", "textmtl.app"]),
    ("top", ["textmtl.cli", "textmtl.docs", "textmtl.testing"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__": parts = parts[:-1]
    return ".".join(parts)


def layer_of(mod: str) -> int:
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            if mod == n or (n.endswith(".") and (mod.startswith(n) or mod == n[:-1])): return i
    raise AssertionError(f"{mod}: in no layer; add it to LAYERS here and to the layer map in nbs/index.ipynb")


def imports_of(path: Path) -> set[str]: return imports_of_file(path, module_name(path))


def imports_of_file(path: Path, mod: str) -> set[str]:
    tree, out = ast.parse(path.read_text(encoding="utf-8")), set()
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "textmtl"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] != "textmtl": continue
            for a in node.names:   # `from textmtl.run import folder` imports the module textmtl.run.folder
                sub = f"{base}.{a.name}"
                out.add(sub if (PKG.parent / (sub.replace(".", "/") + ".py")).is_file() else base)
    out.discard(mod)
    return out


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}
GRAPH = {m: {i for i in imports_of(p) if i in MODULES} for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for m in MODULES: layer_of(m)


def upward(graph) -> list[str]:
    return sorted(f"{m} ({LAYERS[layer_of(m)][0]}) imports {i} ({LAYERS[layer_of(i)][0]})"
                  for m, deps in graph.items() for i in deps if layer_of(i) > layer_of(m))


def find_cycle(graph):
    "One import cycle of `graph` as a list of modules (first == last), or None."
    state, stack = {}, []
    def visit(m):
        state[m] = "open"; stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open": return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)): return c
        state[m] = "done"; stack.pop()
    for m in sorted(graph):
        if m not in state and (c := visit(m)): return c
    return None


def test_no_upward_import():
    bad = upward({m: d for m, d in GRAPH.items() if m != "textmtl._modidx"})
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_cycle():
    c = find_cycle(GRAPH)
    assert c is None, "import cycle: " + " -> ".join(c)


def test_the_checks_can_fail(tmp_path):
    test_graph = {"textmtl.data.books": {"textmtl.data.dataset"}, "textmtl.data.dataset": {"textmtl.data.books"}}
    assert find_cycle(test_graph) == ["textmtl.data.books", "textmtl.data.dataset", "textmtl.data.books"]
    assert upward({"textmtl.inference": {"textmtl.training.trainer"}}) == []
    assert upward({"textmtl.run.folder": {"textmtl.training.trainer"}}) == [
        "textmtl.run.folder (run) imports textmtl.training.trainer (training)"]
    f = tmp_path / "x.py"; f.write_text("import os\ndef f():\n    from textmtl.training.trainer import Trainer\n")
    assert "textmtl.training.trainer" in imports_of_file(f, "textmtl.data.x")   # function-level imports count


def test_serving_does_not_load_the_training_stack(tmp_path):
    "`textmtl predict` (a run loaded and used), `export` and `evaluate` (run.evaluation) need no trainer, snapshots or torchrun code."
    code = ("import sys, textmtl.export, textmtl.run.evaluation\n"
            "from textmtl.inference import Predictor\nfrom textmtl.testing import write_tiny_run, EMOTIONS, TOPICS\n"
            "from textmtl.data.tokenization import Tokenizer\n"
            f"run = write_tiny_run({str(tmp_path / 'run')!r}, Tokenizer(), {{'emotion': EMOTIONS, 'topic': TOPICS}})\n"
            "Predictor.from_run(run, device='cpu').predict(['A text.'], num_beams=1, max_new_tokens=2)\n"
            "print(sorted(m for m in sys.modules if m.startswith('textmtl')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    loaded = eval(r.stdout.strip().splitlines()[-1])
    assert "textmtl.run.folder" in loaded          # the run was loaded through the run layer
    training = [m for m in loaded if m.startswith("textmtl.training.") and m != "textmtl.training.metrics"]
    assert not training, f"serving loads {training}"
