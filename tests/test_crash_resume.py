"""Crash safety and exact resume of the real training job (`train_from_config` / `textmtl train`), end to end.

* A training subprocess is SIGKILLed while it is inside `save_state`, at two deterministic points: in the middle of
  writing the new checkpoint's files (the weights are on disk in `.last.tmp-*`, the training state and `meta.json`
  are not), and in the middle of the directory swap (the previous `last` has been renamed to `.last.old-*`, the new
  one is not yet in place). The subprocess signals through a file when it reaches the point and then sleeps, so the
  parent kills it exactly there. The previous checkpoint (step 3) must still load, `textmtl train --resume` must
  finish the run, and the final weights must equal, bit for bit, those of a run that was never killed.
* Exact resume: 4 steps, then `train_from_config(..., resume=True)` to 8 steps == 8 steps uninterrupted, bitwise (CPU,
  one thread everywhere), with dropout on and identical history records. The schedule is `constant` after warm-up
  because a linear decay depends on `max_steps`, which is what changes between the two calls.
"""
import json, os, signal, subprocess, sys, time, warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from textmtl.cli import main
from textmtl.run.folder import load_run
from textmtl.training.run import train_from_config
from textmtl.utils.io import load_state
from tiny_project import make_project, subprocess_env

STEPS = 8
TRAINER = dict(max_steps=STEPS, schedule="constant", warmup_steps=2, eval_every=2, checkpoint_every=1)

KILLER = r'''
import os, pathlib, sys, time
mode, cfg, flag = sys.argv[1:4]
import textmtl.utils.io as io
seen = {"n": 0}
def hang():
    pathlib.Path(flag).write_text(str(os.getpid()))
    time.sleep(600)
if mode == "write":              # inside the write of the 4th `last` checkpoint (step 4), after its weights file
    real_save = io.save_file
    def save_file(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)
        if "/.last.tmp-" in str(path):
            seen["n"] += 1
            if seen["n"] == 4: hang()
    io.save_file = save_file
else:                            # inside the swap of the 4th `last` checkpoint: old one moved aside, new one not in place
    real_rename = os.rename
    def rename(src, dst):
        real_rename(src, dst)
        if os.path.basename(str(dst)).startswith(".last.old-"):
            seen["n"] += 1
            if seen["n"] == 3: hang()   # the first save has nothing to move aside
    os.rename = rename
from textmtl.training.run import train_from_config
train_from_config(cfg)
raise SystemExit("training finished without reaching the kill point")
'''


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)      # the same kernels/reduction order as the OMP_NUM_THREADS=1 subprocesses
    yield
    torch.set_num_threads(n)


def weights(run, name="last"):
    return load_file(Path(run) / "checkpoints" / name / "model.safetensors")


def assert_bitwise(a: dict, b: dict):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"


def strip(run, resumed=False):
    "The history's records without their times (and without the `resumed` records, which name changed settings)."
    recs = [json.loads(l) for l in (Path(run) / "history.jsonl").read_text().splitlines() if l.strip()]
    return [{k: v for k, v in r.items() if k != "time"} for r in recs if resumed or r["kind"] != "resumed"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mirror):
    "An uninterrupted 8-step run of the tiny project."
    tmp = tmp_path_factory.mktemp("reference")
    cfg = make_project(tmp, **TRAINER)
    torch.set_num_threads(1)
    res = train_from_config(cfg)
    assert res["steps"] == STEPS
    return tmp / "run"


def test_exact_resume_bitwise(tmp_path, reference):
    cfg = make_project(tmp_path, **TRAINER)
    first = train_from_config(cfg, overrides={"trainer.max_steps": STEPS // 2})
    assert first["steps"] == STEPS // 2
    half = weights(tmp_path / "run")
    res = train_from_config(cfg, resume=True)
    assert res["steps"] == STEPS
    assert_bitwise(weights(tmp_path / "run"), weights(reference))
    assert_bitwise(weights(tmp_path / "run", "best"), weights(reference, "best"))
    assert strip(tmp_path / "run") == strip(reference)
    assert [r for r in strip(tmp_path / "run", resumed=True) if r["kind"] == "resumed"] == \
           [{"kind": "resumed", "step": STEPS // 2, "changed": {"max_steps": [STEPS // 2, STEPS]}}]   # the change, recorded
    assert any(not torch.equal(half[k], v) for k, v in weights(tmp_path / "run").items())   # the resumed part trained
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == STEPS


@pytest.mark.parametrize("where", ["write", "swap"])
def test_sigkill_inside_save_state(tmp_path, reference, where):
    cfg = make_project(tmp_path, **TRAINER)
    script, flag = tmp_path / "killer.py", tmp_path / "reached"
    script.write_text(KILLER)
    proc = subprocess.Popen([sys.executable, str(script), where, str(cfg), str(flag)], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 180
        while not flag.exists():
            if proc.poll() is not None: pytest.fail(f"training exited ({proc.returncode}) before the kill point:\n{proc.stdout.read()[-4000:]}")
            if time.time() > deadline: pytest.fail("the kill point was not reached in 180 s")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None: proc.kill()
        proc.stdout.close()

    ckpts = tmp_path / "run" / "checkpoints"
    leftovers = sorted(p.name for p in ckpts.iterdir() if p.name.startswith(".last."))
    if where == "write":
        assert any(n.startswith(".last.tmp-") for n in leftovers), leftovers    # killed mid-write: a partial temp dir
        assert (ckpts / "last" / "meta.json").is_file()
    else:
        assert not (ckpts / "last").exists() and any(n.startswith(".last.old-") for n in leftovers), leftovers
    # the previous checkpoint (step 3) still loads, through the same loader inference uses
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_run(tmp_path / "run", "last")
        meta = load_state(run.checkpoint, run.model)
    assert meta["step"] == 3
    if where == "swap": assert any("interrupted save" in str(w.message) for w in caught)
    # resume with the command line; the result is the uninterrupted run, bit for bit
    assert main(["train", "--config", str(cfg), "--resume"]) == 0
    assert_bitwise(weights(tmp_path / "run"), weights(reference))
    assert strip(tmp_path / "run") == strip(reference)
    assert not [p.name for p in ckpts.iterdir() if p.name.startswith(".")]    # crash leftovers cleaned up
