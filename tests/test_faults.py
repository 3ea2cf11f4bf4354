"""Nothing lost, ever: the faults of a careless or unlucky user, run as real processes where it matters.

* Ctrl-C (SIGINT) and SIGTERM during `textmtl train`: the current step finishes, `checkpoints/last` is written, the
  message says how to resume, the exit status is 128 + the signal, and `--resume` continues from that step.
* One training per run folder: a second `textmtl train` on a folder in use fails at once naming the first; the lock
  of a training killed with SIGKILL does not block the next one.
* `--overwrite` replaces the earlier run only once the new one has a checkpoint: a run refused by a check, a run that
  fails in its first step, and a run killed before its first checkpoint all leave the earlier run as it was.
* A full disk (here: a file-size limit, RLIMIT_FSIZE, so that the test needs no special filesystem) while saving a
  checkpoint: one line naming the folder and the space needed; the earlier checkpoint still loads.
* Classes of bad values and damaged run files: one line naming the key or the file, for each.
"""
import json, os, resource, signal, subprocess, sys, time
from pathlib import Path

import pytest
import yaml

from tiny_project import cli, make_project, snapshot, subprocess_env

pytestmark = pytest.mark.usefixtures("mirror")


def textmtl(*args, **kw):
    return [sys.executable, "-m", "textmtl.cli", *map(str, args)]


def run(*args, timeout=300, preexec_fn=None):
    "`textmtl ARGS` as a real process: (exit status, stdout, stderr)."
    p = subprocess.run(textmtl(*args), env=subprocess_env(), capture_output=True, text=True, timeout=timeout,
                       preexec_fn=preexec_fn)
    return p.returncode, p.stdout, p.stderr


def start(*args):
    return subprocess.Popen(textmtl(*args), env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(cond, timeout=120, proc=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond(): return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    raise AssertionError("timed out")


def train_records(run_dir: Path) -> int:
    h = run_dir / "history.jsonl"
    if not h.is_file(): return 0
    return sum(1 for l in h.read_text().splitlines() if '"kind": "train"' in l)


def ckpt_step(run_dir: Path, name="last") -> int:
    from textmtl.utils.io import resolve_checkpoint_dir      # a process killed mid-save may have left it as `.last.old-*`
    return json.loads((resolve_checkpoint_dir(run_dir / "checkpoints" / name) / "meta.json").read_text())["step"]


def one_line_error(rc, err):
    assert rc == 2 and err.startswith("textmtl: error: ") and err.count("\n") == 1 and "Traceback" not in err, (rc, err)
    return err


def test_signals_save_and_resume(tmp_path):
    cfg = make_project(tmp_path, max_steps=100000, eval_every=0, checkpoint_every=100000)
    args = ["train", "--config", cfg]
    for sig in (signal.SIGINT, signal.SIGTERM):          # Ctrl-C, then SIGTERM on the resumed run
        p = start(*args)
        done = train_records(tmp_path / "run")
        wait_for(lambda: train_records(tmp_path / "run") >= done + 3, proc=p)
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 128 + sig, (p.returncode, err[-2000:])
        assert "Traceback" not in err and "--resume" in err and f"{signal.Signals(sig).name}: stopped after step" in err, err
        step = ckpt_step(tmp_path / "run")
        assert f"stopped after step {step};" in err
        args = ["train", "--config", cfg, "--resume"]
    rc, _, err = run(*args, "--max-steps", step + 2)
    assert rc == 0, err
    assert ckpt_step(tmp_path / "run") == step + 2 and json.loads((tmp_path / "run/metrics.json").read_text())["steps"] == step + 2


def test_one_training_per_run_folder(tmp_path):
    cfg = make_project(tmp_path, max_steps=100000, eval_every=0, checkpoint_every=2)
    first = start("train", "--config", cfg)
    try:
        wait_for(lambda: (tmp_path / "run/checkpoints/last").is_dir(), proc=first)
        t0 = time.time()
        rc, _, err = run("train", "--config", cfg, "--resume")
        assert f"another training is using this run folder (pid {first.pid} on" in one_line_error(rc, err)
        assert time.time() - t0 < 60
    finally:
        first.kill(); first.wait()                       # SIGKILL: no chance to remove its lock
    assert (tmp_path / "run/.lock").exists()
    step = ckpt_step(tmp_path / "run")
    rc, _, err = run("train", "--config", cfg, "--resume", "--max-steps", step + 1)
    assert rc == 0 and "taking over the lock" in err, err
    assert not (tmp_path / "run/.lock").exists()


def test_overwrite_keeps_the_earlier_run_until_the_new_one_has_a_checkpoint(tmp_path):
    cfg = make_project(tmp_path, max_steps=4, eval_every=2)
    rc, _, err = cli("train", "--config", cfg)
    assert rc == 0, err
    before = snapshot(tmp_path / "run")
    # refused by a check that runs before anything is moved
    for kv, msg in [("trainer.early_stopping_metric=topic/acuracy", "is not a metric of this run; use one of"),
                    ("trainer.device=cuda", "trainer.device: 'cuda' but CUDA is not available"),
                    ("evaluation.max_new_tokens=100", "evaluation.max_new_tokens: 100 needs 101 positions but the model has 64")]:
        rc, _, err = cli("train", "--config", cfg, "--overwrite", "--set", kv)
        assert msg in one_line_error(rc, err), (kv, err)
        assert snapshot(tmp_path / "run") == before, kv
    # fails before its first checkpoint: a learning rate this large makes the weights overflow, a loss of the first
    # steps is NaN and the trainer stops (TrainingDivergedError); no evaluation, so no checkpoint, before that
    rc, _, err = cli("train", "--config", cfg, "--overwrite", "--set", "trainer.lr=1e38", "--set", "trainer.eval_every=50")
    assert "training diverged at step" in one_line_error(rc, err) and snapshot(tmp_path / "run") == before, err[-1500:]
    # killed (SIGKILL) after the earlier run was set aside, before the first checkpoint: the next training puts it back
    yml = yaml.safe_load(cfg.read_text()); yml["trainer"].update(max_steps=100000, eval_every=0, checkpoint_every=100000)
    slow = tmp_path / "slow.yaml"; slow.write_text(yaml.safe_dump(yml))
    p = start("train", "--config", slow, "--overwrite")
    wait_for(lambda: train_records(tmp_path / "run") >= 2 and list((tmp_path / "run").glob(".replaced-*")), proc=p)
    p.kill(); p.wait()
    rc, out, err = run("train", "--config", cfg, "--resume")        # resumes the earlier run, already at its last step
    assert rc == 0 and "put back the earlier run" in out, err
    after = snapshot(tmp_path / "run")
    assert {k: v for k, v in after.items() if k.startswith("checkpoints/")} == \
           {k: v for k, v in before.items() if k.startswith("checkpoints/")}
    assert not list((tmp_path / "run").glob(".replaced-*"))


def test_resume_without_a_checkpoint_says_so(tmp_path):
    cfg = make_project(tmp_path)
    rc, _, err = cli("train", "--config", cfg, "--resume")
    assert "nothing to resume (no checkpoint); run without --resume" in one_line_error(rc, err)


def test_disk_full_while_saving_a_checkpoint(tmp_path):
    cfg = make_project(tmp_path, max_steps=2, eval_every=2)
    rc, _, err = cli("train", "--config", cfg)
    assert rc == 0, err
    def limit():                                 # files above 5 MiB fail with EFBIG: the optimizer state (6.5 MB) does not fit
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (5 << 20, 5 << 20))
    rc, _, err = run("train", "--config", cfg, "--resume", "--max-steps", 4, preexec_fn=limit)
    err = one_line_error(rc, err)
    assert f"{tmp_path / 'run' / 'checkpoints'}: no space to write the checkpoint" in err and "MiB are free" in err, err
    assert "--resume" in err
    assert ckpt_step(tmp_path / "run") == 2                                   # the earlier checkpoint is intact
    rc, _, err = run("evaluate", "--run", tmp_path / "run", "--checkpoint", "last", "--max-examples", 4)
    assert rc == 0, err
    def tiny_limit():                            # now even the run's tokenizer (3.6 MB) does not fit: named as such
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    rc, _, err = run("train", "--config", cfg, "--resume", "--max-steps", 4, preexec_fn=tiny_limit)
    assert f"{tmp_path / 'run'}: no space to write the run's files" in one_line_error(rc, err), err
    assert ckpt_step(tmp_path / "run") == 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mirror):
    tmp = tmp_path_factory.mktemp("trained")
    cfg = make_project(tmp, max_steps=2, eval_every=2)
    rc, _, err = cli("train", "--config", cfg)
    assert rc == 0, err
    return tmp, cfg


def test_bad_values_name_their_key(trained):
    tmp, cfg = trained
    for kv, msg in [("data.batch_size.topic=-1", "data: invalid RunDataConfig: batch_size.topic: expected a whole number >= 1"),
                    ("data.max_examples.topic.train=-5", "max_examples.topic.train: expected a whole number >= 1"),
                    ("evaluation.min_new_tokens=9", "min_new_tokens: expected 0 ... max_new_tokens"),
                    ("trainer.device=tpu", "trainer.device: expected one of 'auto', 'cpu', 'cuda', got str ('tpu')")]:
        rc, _, err = cli("train", "--config", cfg, "--output-dir", tmp / "other", "--set", kv)
        assert msg in one_line_error(rc, err) and "tiny.yaml" in err, (kv, err)
    rc, _, err = cli("evaluate", "--run", tmp / "run", "--device", "cuda:9")
    assert "'cuda:9'" in one_line_error(rc, err)


def test_text_that_is_not_unicode(trained):
    tmp, _ = trained
    rc, _, err = cli("predict", "--run", tmp / "run", "--tasks", "topic", os.fsdecode(b"caf\xe9 au lait"))
    assert "text argument 1: not valid UTF-8" in one_line_error(rc, err)
    p = subprocess.run(textmtl("predict", "--run", tmp / "run", "--tasks", "topic"), input=b"fine\nbad \xff\n",
                       env=subprocess_env(), capture_output=True, timeout=300)
    assert "<stdin>:2: not UTF-8 (byte 0xff)" in one_line_error(p.returncode, p.stderr.decode())


@pytest.mark.parametrize("damage, where", [
    (lambda r: (r / "artifacts/hf_tokenizer/tokenizer.json").write_text('{"version": "1.0", "trunc'), "artifacts/hf_tokenizer"),
    (lambda r: (r / "metrics.json").write_text('{"thresholds": {"emotion": '), "metrics.json"),
])
def test_damaged_run_files_are_named(trained, tmp_path, damage, where):
    import shutil
    tmp, _ = trained
    r = tmp_path / "run"; shutil.copytree(tmp / "run", r)
    damage(r)
    rc, _, err = cli("predict", "--run", r, "--tasks", "topic", "Stocks fell sharply today.")
    assert str(r / where) in one_line_error(rc, err), err


def test_a_run_without_metrics_json_says_what_changes(trained, tmp_path):
    "No metrics.json (a run still training, a folder copied without it): the answers use 0.5 thresholds, uncalibrated; said on stderr."
    import shutil
    tmp, _ = trained
    r = tmp_path / "run"; shutil.copytree(tmp / "run", r)
    (r / "metrics.json").unlink()
    rc, out, err = run("predict", "--run", r, "--tasks", "emotion", "I am happy today")
    assert rc == 0 and json.loads(out.splitlines()[0])["emotions"] is not None, err
    line = [l for l in err.splitlines() if "metrics.json" in l]
    assert len(line) == 1 and line[0].startswith(f"[textmtl] warning: {r / 'metrics.json'}: not found"), err
    assert "thresholds fall back to 0.5" in line[0] and "calibration is off" in line[0], err


def test_resume_applies_a_new_learning_rate_for_real_and_records_it(trained, tmp_path):
    "`--resume --set trainer.lr=...`: the optimizer really steps at the new rate (not the checkpoint's), and the run says so."
    import shutil
    from textmtl.training.trainer import lr_multiplier
    tmp, cfg = trained
    r = tmp_path / "run"; shutil.copytree(tmp / "run", r)
    rc, out, err = cli("train", "--config", cfg, "--output-dir", r, "--resume", "--max-steps", 4, "--set", "trainer.lr=1e-3")
    assert rc == 0, err
    hist = [json.loads(l) for l in (r / "history.jsonl").read_text().splitlines()]
    lrs = {h["step"]: h["lr"] for h in hist if h["kind"] == "train"}
    for s in (3, 4):                                 # warm-up 1, linear decay to step 4, from the new peak 1e-3
        assert abs(lrs[s] - 1e-3 * lr_multiplier(s, "linear", 1, 4)) < 1e-12, (s, lrs)
    resumed = [h for h in hist if h["kind"] == "resumed"]
    assert len(resumed) == 1 and resumed[0]["step"] == 2 and resumed[0]["changed"]["lr"] == [3e-3, 1e-3], resumed
    assert "trainer.lr: 0.003 -> 0.001" in out, out
    assert yaml.safe_load((r / "config.yaml").read_text())["trainer"]["lr"] == 1e-3
    assert json.loads((r / "checkpoints/last/meta.json").read_text())["config"]["lr"] == 1e-3


@pytest.mark.parametrize("args, msg", [
    (["--set", "data.batch_size.topic=8"], "data.batch_size: {'summarization': 4, 'emotion': 4, 'topic': 8} differs from"),
    (["--set", "data.max_tokens={topic: 64}"], "data.max_tokens: {'topic': 64} differs from {}"),
    (["--set", "trainer.seed=5"], "trainer.seed: 5 differs from 1"),
    (["--set", "model.activation_function=relu"], "model.activation_function: 'relu' differs from 'gelu'"),
    (["--set", "tasks=[summarization, topic]"], "tasks: ['summarization', 'topic'] differs from"),
    (["--max-steps", 1], "trainer.max_steps: 1 is below the checkpoint's step 2"),
])
def test_resume_refuses_what_it_cannot_continue_and_writes_nothing(trained, tmp_path, args, msg):
    "A change a resumed run cannot apply: one line naming the key (and the checkpoint); the run folder is left as it was."
    import shutil
    tmp, cfg = trained
    r = tmp_path / "run"; shutil.copytree(tmp / "run", r)
    before = snapshot(r)
    rc, _, err = cli("train", "--config", cfg, "--output-dir", r, "--resume", *args)
    err = one_line_error(rc, err)
    assert msg in err and "tiny.yaml" in err and str(r / "checkpoints" / "last") in err, err
    assert snapshot(r) == before
