"""Bad input through the public entry points: each gets a one-line error naming the file, line and field (or a
documented, counted skip), and nothing that existed before is changed.

The entry points are the command line (`textmtl.cli.main`, exit status 2 and `textmtl: error: ...` on stderr for a
user error, never a traceback) and `prepare_all` for raw data. Every failing case runs against a folder that already
holds outputs (processed JSONL, a trained run folder with checkpoints and artifacts), and those outputs are compared
byte for byte before and after.

Property-based tests of the tokenizer/collator invariants (padding -> -100, decoder inputs = labels shifted right,
multi-hot round trips) live in `nbs/05_dataloader.ipynb`; here a property checks that a corrupted line anywhere in a
processed file is reported with its own line number.
"""
import contextlib, io, json, shutil
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from textmtl.cli import main
from textmtl.data.dataset import DataFormatError, read_jsonl
from textmtl.data.preprocessing import RawDataError, load_data_config, prepare_all
from tiny_project import cli, make_project, snapshot


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def user_error(*args) -> str:
    rc, _, err = cli(*args)
    assert rc == 2 and err.startswith("textmtl: error: ") and err.count("\n") == 1, (rc, err)
    return err


@pytest.fixture(scope="module")
def project(tmp_path_factory, mirror):
    "A tiny project with a trained run (2 steps): `(folder, training yaml, run folder)`."
    tmp = tmp_path_factory.mktemp("project")
    cfg = make_project(tmp, max_steps=2, eval_every=2)
    rc, _, err = cli("train", "--config", cfg)
    assert rc == 0, err
    return tmp, cfg, tmp / "run"


@pytest.fixture
def fresh(project, tmp_path):
    "A private copy of the project (processed data, configs, trained run) that a test may damage."
    src, _, _ = project
    for name in ("processed", "run"): shutil.copytree(src / name, tmp_path / name)
    data = yaml.safe_load((src / "datasets.yaml").read_text())
    data.update(raw_dir=str(tmp_path / "raw"), processed_dir=str(tmp_path / "processed"))
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    run = yaml.safe_load((src / "tiny.yaml").read_text())
    run.update(output_dir=str(tmp_path / "run"), data_config=str(tmp_path / "datasets.yaml"))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(run, sort_keys=False))
    return tmp_path


# ---- processed JSONL (training input) ---------------------------------------------------------------------------
GOOD_EMO = b'{"text": "fine", "emotions": ["joy"]}\n'
CASES = {   # name: (file, bytes appended (None: file emptied), expected message)
    "invalid JSON": ("emotion/train.jsonl", b'{"text": "x", "emotions": ["joy"]\n', "emotion/train.jsonl:33: invalid JSON"),
    "cp1252 bytes": ("emotion/train.jsonl", '{"text": "caf\u00e9 \u201cok\u201d", "emotions": ["joy"]}\n'.encode("cp1252"),
                     "emotion/train.jsonl:33: not UTF-8"),
    "not an object": ("topic/train.jsonl", b'["text", "topic"]\n', "topic/train.jsonl:33: expected a JSON object, got list"),
    "missing field": ("emotion/train.jsonl", b'{"text": "x"}\n', "emotion/train.jsonl:33: emotions: missing field"),
    "wrong type": ("emotion/train.jsonl", b'{"text": "x", "emotions": "joy"}\n', "emotion/train.jsonl:33: emotions: expected list of string"),
    "empty text": ("summarization/train.jsonl", b'{"source": "", "summary": "y"}\n', "summarization/train.jsonl:33: source: empty text"),
    "empty label list": ("emotion/train.jsonl", b'{"text": "x", "emotions": []}\n', "emotion/train.jsonl:33: emotions: empty label list"),
    "unknown label": ("topic/val.jsonl", b'{"text": "x", "topic": "Cooking"}\n', "topic/val.jsonl:9: topic: unknown label 'Cooking'"),
    "unknown emotion": ("emotion/test.jsonl", GOOD_EMO + b'{"text": "x", "emotions": ["joy", "awe"]}\n', "emotion/test.jsonl:10: emotions: unknown label 'awe'"),
    "lone surrogate": ("summarization/train.jsonl", b'{"source": "bad \\udcff text", "summary": "y"}\n',
                       "summarization/train.jsonl:33: source: not valid Unicode text (surrogates not allowed at character 4)"),
    "lone surrogate in a label": ("emotion/train.jsonl", b'{"text": "x", "emotions": ["\\ud800"]}\n', "emotion/train.jsonl:33: emotions[0]: not valid Unicode"),
    "empty file": ("topic/train.jsonl", None, "topic/train.jsonl: no examples (empty file)"),
    "blank lines only": ("summarization/val.jsonl", None, "summarization/val.jsonl: no examples"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_processed_data(fresh, case):
    name, data, expect = CASES[case]
    f = fresh / "processed" / name
    f.write_bytes(b"\n \n" if case == "blank lines only" else b"" if data is None else f.read_bytes() + data)
    before_run, before_data = snapshot(fresh / "run"), snapshot(fresh / "processed")
    err = user_error("train", "--config", fresh / "tiny.yaml", "--overwrite")   # even when asked to replace the run
    assert expect in err, err
    assert snapshot(fresh / "run") == before_run            # the existing run folder is untouched
    assert snapshot(fresh / "processed") == before_data     # and so is the data (no silent "repair")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 30), data=st.data())
def test_corrupted_line_is_located(tmp_path, n, data):
    rows = [json.dumps({"text": f"row {i}", "topic": "World"}) for i in range(n)]
    bad = data.draw(st.integers(0, n - 1))
    junk = data.draw(st.sampled_from(['{"text": 1, "topic": "World"}', '{"text": "x"', "[]", '{"text": "  ", "topic": "A"}',
                                      '{"topic": "World"}']))
    rows[bad] = junk
    f = tmp_path / f"p{n}-{bad}.jsonl"
    f.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataFormatError) as e:
        read_jsonl(f, {"text": str, "topic": str})
    assert (e.value.path, e.value.line) == (str(f), bad + 1) and f"{f}:{bad + 1}:" in str(e.value)


def test_enormous_texts_are_truncated(fresh):
    "A 1 MB line in training data and a 1 MB text to predict: truncated to max_length, no crash, no memory blow-up."
    huge = "word " * 200_000
    for task, row in (("topic", {"text": huge, "topic": "Sports"}), ("summarization", {"source": huge, "summary": "a short one"})):
        with open(fresh / "processed" / task / "train.jsonl", "a", encoding="utf-8") as f: f.write(json.dumps(row) + "\n")
    rc, out, err = cli("train", "--config", fresh / "tiny.yaml", "--output-dir", fresh / "huge", "--set", "data.max_examples={}",
                       "--set", "data.batch_size={summarization: 40, emotion: 4, topic: 40}", "--max-steps", "2")
    assert rc == 0, err   # batches of 40 hold every row, so the 1 MB rows are in the two steps
    rc, out, err = cli("predict", "--run", fresh / "run", huge, "--tasks", "topic,summarization", "--num-beams", "1",
                       "--max-new-tokens", "3", "--device", "cpu")
    assert rc == 0, err
    r = json.loads(out.splitlines()[0])
    assert r["topic"] and "summary" in r


# ---- configs ----------------------------------------------------------------------------------------------------
def test_bad_training_config(fresh):
    before = snapshot(fresh / "run")
    cfg = fresh / "tiny.yaml"
    good = cfg.read_text()
    cases = [
        (good.replace("lr: 0.003", "lr: fast"), "tiny.yaml: trainer.lr: expected float, got str ('fast')"),
        (good.replace("lr: 0.003", "lr: 0.003\n  learning_rate: 1"), "tiny.yaml: trainer.learning_rate: unknown key"),
        (good.replace("d_model: 16", "d_model: [16]"), "tiny.yaml: model.d_model: expected int"),
        (good.replace("tasks:", "tasks: [sentiment]\nold_tasks:"), "tiny.yaml"),
        (good.replace("trainer:", "trainer: [\n"), "tiny.yaml"),          # invalid YAML
        (good.replace("sampling: round_robin", "sampling: random"), "tiny.yaml: trainer.sampling"),
        (good.replace("max_steps: 2", "max_steps: 0"), "tiny.yaml: trainer: invalid TrainerConfig: max_steps: expected >= 1"),
        (good.replace("lr: 0.003", "lr: &lr 0.003\n  eps: *lr"), "YAML aliases/anchors are not allowed: found anchor &lr"),
        (good.replace("max_steps: 2", "epochs: .inf"), "tiny.yaml: trainer.epochs: expected a finite number, got float (inf)"),
        (good.replace("lr: 0.003", "lr: 0.003\n  weight_decay: .nan"), "tiny.yaml: trainer.weight_decay: expected a finite number, got float (nan)"),
        (good.replace("lr: 0.003", "lr: 0.003\n  eps: .nan"), "tiny.yaml: trainer.eps: expected a finite number, got float (nan)"),
        (good.replace("lr: 0.003", "lr: 0.003\n  eps: 0"), "tiny.yaml: trainer: invalid TrainerConfig: eps: expected > 0, got 0.0"),
        (good.replace("lr: 0.003", "lr: 0.003\n  pos_weight_max: -1"), "tiny.yaml: trainer: invalid TrainerConfig: pos_weight_max: expected > 0"),
    ]
    for text, expect in cases:
        cfg.write_text(text)
        err = user_error("train", "--config", cfg)
        assert expect in err, (expect, err)
    cfg.write_text(good)
    for kv, expect in [("trainer.lr=fast", "trainer.lr: expected float"), ("trainer.learnig_rate=1", "trainer.learnig_rate: unknown key"),
                       ("data.batch_size.sentiment=4", "data.batch_size: unknown task 'sentiment'"),
                       ("model.d_model.x=1", "model.d_model.x: d_model is not a section"),
                       ("model.layer_norm_eps=-.inf", "model.layer_norm_eps: expected a finite number, got float (-inf)"),
                       ("evaluation.length_penalty=.nan", "evaluation.length_penalty: expected a finite number"),
                       ("data.max_examples={summarization: {val: 0}}", "max_examples.summarization.val: expected a whole number >= 1")]:
        err = user_error("train", "--config", cfg, "--set", kv)
        assert "tiny.yaml" in err and expect in err, (kv, err)
    assert snapshot(fresh / "run") == before


def test_bad_data_config(fresh):
    before = snapshot(fresh / "run"), snapshot(fresh / "processed")
    d = fresh / "datasets.yaml"
    good = d.read_text()
    for text, expect in [(good.replace("seed: 13", "seed: thirteen"), "datasets.yaml: preparation.seed: expected int"),
                         (good.replace("seed: 13", "seed: 13\n  sede: 1"), "datasets.yaml: preparation.sede: unknown key"),
                         (good.replace("summarization_source: cnn_dailymail", "summarization_source: wikipedia"),
                          "datasets.yaml: preparation.summarization_source"),
                         (good.replace("max_length: 64", "max_length: -1"), "datasets.yaml: tokenizer: invalid TokenizerConfig: max_length")]:
        d.write_text(text)
        err = user_error("train", "--config", fresh / "tiny.yaml")
        assert expect in err, (expect, err)
    assert (snapshot(fresh / "run"), snapshot(fresh / "processed")) == before


def test_bad_torchrun_environment(fresh, monkeypatch):
    for k, v in dict(WORLD_SIZE="2", RANK="5", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500").items(): monkeypatch.setenv(k, v)
    before = snapshot(fresh / "run")
    err = user_error("train", "--config", fresh / "tiny.yaml")
    assert "RANK: expected 0 <= RANK < WORLD_SIZE=2, got 5" in err
    assert snapshot(fresh / "run") == before


# ---- run folders: checkpoints and artifacts (evaluate, predict, resume) ------------------------------------------
def flip_byte(p: Path):
    b = bytearray(p.read_bytes()); b[len(b) // 2] ^= 0xFF; p.write_bytes(bytes(b))


def relabel(run, f):
    p = run / "artifacts" / "labels.json"
    p.write_text(json.dumps(f(json.loads(p.read_text()))))


DAMAGE = {   # name: (damage the run folder, file the message must name, extra text expected)
    "weights corrupted": (lambda r: flip_byte(r / "checkpoints/best/model.safetensors"), "checkpoints/best/model.safetensors", "corrupted"),
    "weights truncated": (lambda r: (r / "checkpoints/best/model.safetensors").write_bytes(b"\x10\x00"), "checkpoints/best/model.safetensors", ""),
    "meta.json corrupted": (lambda r: (r / "checkpoints/best/meta.json").write_text("{oops"), "checkpoints/best/meta.json", "corrupted"),
    "no checkpoints": (lambda r: shutil.rmtree(r / "checkpoints"), "checkpoints/best", "not found"),
    "labels: one topic fewer": (lambda r: relabel(r, lambda l: {**l, "topic": l["topic"][:-1]}), "", "label"),
    "labels: reordered": (lambda r: relabel(r, lambda l: {**l, "topic": l["topic"][::-1]}), "", "label vocabulary"),
    "labels.json invalid": (lambda r: (r / "artifacts/labels.json").write_text('{"emotion": ["a",\n "b"'), "artifacts/labels.json", "invalid JSON"),
    "labels.json missing": (lambda r: (r / "artifacts/labels.json").unlink(), "artifacts/labels.json", ""),
    "tokenizer missing": (lambda r: shutil.rmtree(r / "artifacts/hf_tokenizer"), "artifacts/hf_tokenizer", ""),
    "config.yaml with aliases": (lambda r: (r / "config.yaml").write_text((r / "config.yaml").read_text().replace("lr: 0.003", "lr: &x 0.003")
                                                                          .replace("pos_weight_max: 30.0", "pos_weight_max: *x")),
                                 "config.yaml", "YAML aliases/anchors are not allowed: found anchor &x"),
    "config.yaml wrong type": (lambda r: (r / "config.yaml").write_text((r / "config.yaml").read_text().replace("lr: 0.003", "lr: fast")),
                               "config.yaml", "trainer.lr"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_damaged_run_folder(fresh, damage, command):
    run = fresh / "run"
    fn, names, expect = DAMAGE[damage]
    fn(run)
    before = snapshot(run)
    args = ["--run", run, "--device", "cpu"] + (["--max-examples", "4"] if command == "evaluate" else ["some text", "--tasks", "topic"])
    err = user_error(command, *args)
    assert str(run / names) in err and expect in err, err
    assert snapshot(run) == before


def test_resume_from_corrupted_checkpoint(fresh):
    run = fresh / "run"
    flip_byte(run / "checkpoints/last/training_state.pt")
    before = snapshot(run)
    err = user_error("train", "--config", fresh / "tiny.yaml", "--max-steps", "4", "--resume")
    assert str(run / "checkpoints/last/training_state.pt") in err and "corrupted" in err, err
    assert snapshot(run) == before       # config.yaml, history, checkpoints, artifacts: byte-identical


def test_bad_predict_inputs(fresh):
    run = fresh / "run"
    f = fresh / "in.txt"
    f.write_bytes("fine line\ncaf\u00e9 \u201cquoted\u201d\n".encode("cp1252"))
    assert f"{f}:2: not UTF-8" in user_error("predict", "--run", run, "--file", f)
    f.write_text('fine\n{"text": "x"\n')
    assert f"{f}:2: invalid JSON" in user_error("predict", "--run", run, "--file", f)
    f.write_text('{"title": "no text"}\n')
    assert f"{f}:1: field 'text'" in user_error("predict", "--run", run, "--file", f)
    f.write_text("\n  \n")
    assert f"{f}: no input text" in user_error("predict", "--run", run, "--file", f)
    assert "text argument 2: empty text" in user_error("predict", "--run", run, "ok", " ")
    assert "no such input file" in user_error("predict", "--run", run, "--file", fresh / "nope.txt")
    for tasks, bad in (("topic,sentiment", "sentiment"), ("summary", "summary"), ("topic,", "")):   # unknown, an output key, empty
        assert f"--tasks: this run has no task {bad!r} (its tasks: summarization, emotion, topic)" in user_error(
            "predict", "--run", run, "x", "--tasks", tasks, "--device", "cpu")
    f.write_text("first\n\n\nsecond\n")   # blank lines are skipped: two texts, two results
    rc, out, err = cli("predict", "--run", run, "--file", f, "--tasks", "topic", "--device", "cpu")
    assert rc == 0 and len(out.splitlines()) == 2, err


def test_out_of_range_numbers_fail_before_loading(fresh):
    "Checked while parsing (no model is loaded): a bounded beam count, token count and port; a port in use names it."
    import socket
    def run_cli(*args):   # (exit status, stderr): argparse and the port check end with SystemExit, as a console script does
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try: main([str(a) for a in args]); return 0, err.getvalue()
            except SystemExit as e: return e.code, err.getvalue() + (e.code if isinstance(e.code, str) else "")
    run = fresh / "run"
    for args, msg in [(("predict", "--run", run, "x", "--num-beams", "100000"), "argument --num-beams: expected 1 ... 64, got 100000"),
                      (("predict", "--run", run, "x", "--max-new-tokens", "0"), "argument --max-new-tokens: expected 1 ... 1024, got 0"),
                      (("app", "--run", run, "--port", "70000"), "argument --port: expected 1 ... 65535, got 70000"),
                      (("predict", "--run", run, "x", "--dtype", "fp16"),
                       "argument --dtype: invalid choice: 'fp16' (choose from 'auto', 'float32', 'bf16', 'int8')")]:
        rc, err = run_cli(*args)
        assert rc == 2 and msg in err and "Traceback" not in err, (rc, err)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0)); busy.listen(1)
        rc, err = run_cli("app", "--run", run, "--port", busy.getsockname()[1])
    assert rc not in (0, None) and "cannot listen there" in err and "Traceback" not in err, (rc, err)


# ---- raw data (preparation) --------------------------------------------------------------------------------------
@pytest.fixture
def raw_project(tmp_path, mirror):
    "GoEmotions-format raw files (the first real rows of the mirror) and processed emotion files from a good run."
    raw = tmp_path / "raw" / "goemotions"; raw.mkdir(parents=True)
    shutil.copy(mirror / "goemotions" / "emotions.txt", raw / "emotions.txt")
    for split in ("train", "dev", "test"):
        lines = (mirror / "goemotions" / f"{split}.tsv").read_bytes().splitlines(keepends=True)[:40]
        (raw / f"{split}.tsv").write_bytes(b"".join(lines))
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/data/datasets.yaml").read_text())
    data.update(raw_dir=str(tmp_path / "raw"), processed_dir=str(tmp_path / "processed"))
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = load_data_config(tmp_path / "datasets.yaml")
    with contextlib.redirect_stdout(io.StringIO()):
        prepare_all(cfg, root=tmp_path, tasks=["emotion"], download=False, progress=False)
    return tmp_path, cfg, raw


def test_raw_goemotions_errors_keep_processed_files(raw_project):
    tmp, cfg, raw = raw_project
    before = snapshot(tmp / "processed")
    good = (raw / "train.tsv").read_bytes()
    lines = good.splitlines(keepends=True)
    cases = [
        (lines[:2] + ["caf\u00e9 \u201cnice\u201d\t1\tabc\n".encode("cp1252")] + lines[2:], 3, None, "not valid UTF-8"),
        (lines[:4] + [b"only two\tfields\n"] + lines[4:], 5, None, "expected 3 tab-separated fields"),
        (lines[:5] + [b"text\t1,99\tid\n"] + lines[5:], 6, "labels", "unknown label id 99"),
        (lines[:1] + [b"text\tone\tid\n"] + lines[1:], 2, "labels", "not a non-negative integer"),
    ]
    for content, line, field, expect in cases:
        (raw / "train.tsv").write_bytes(b"".join(content))
        with pytest.raises(RawDataError) as e, contextlib.redirect_stdout(io.StringIO()):
            prepare_all(cfg, root=tmp, tasks=["emotion"], force=True, download=False, progress=False)
        assert (e.value.path, e.value.line, e.value.field) == (str(raw / "train.tsv"), line, field), str(e.value)
        assert expect in str(e.value) and f"train.tsv:{line}:" in str(e.value)
        assert snapshot(tmp / "processed") == before
    # an empty comment is a counted skip, not an error
    (raw / "train.tsv").write_bytes(good + b" \t27\tempty1\n\t3\tempty2\n")
    with contextlib.redirect_stdout(io.StringIO()):
        res = prepare_all(cfg, root=tmp, tasks=["emotion"], force=True, download=False, progress=False)
    assert res["skipped"]["emotion"] == {"empty text": 2}
    assert res["emotion"]["train"] == 40


def test_missing_processed_file_without_a_download_item(fresh):
    "The tiny project's data config has no download items: a missing processed file names that file and the item."
    (fresh / "processed/topic/val.jsonl").unlink()
    before = snapshot(fresh / "processed")
    err = user_error("train", "--config", fresh / "tiny.yaml", "--output-dir", fresh / "other")
    assert f"{fresh / 'datasets.yaml'}: downloads.datasets: no item named 'ag_news_test'" in err, err
    assert snapshot(fresh / "processed") == before


def test_destinations_checked_before_the_work(fresh, monkeypatch):
    "An output path that cannot be written is refused before any work, naming the option and the path as given."
    import os
    def run_cli(*args):   # argparse errors end with SystemExit(2), as a console script does
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try: return main([str(a) for a in args]), err.getvalue()
            except SystemExit as e: return e.code, err.getvalue()
    run = fresh / "run"
    ev = ("evaluate", "--run", run, "--device", "cpu", "--data", fresh / "processed/topic/test.jsonl", "--task", "topic")
    assert f"--predictions {fresh}: is a folder; give a file name" in user_error(*ev, "--predictions", fresh)
    (fresh / "afile").write_text("x")
    for args, opt, dest in [(ev + ("--predictions",), "--predictions", fresh / "afile/p.jsonl"),
                            (("export", "--run", run, "--out"), "--out", fresh / "afile/model"),
                            (("book", "--run", run, "--book", fresh / "none.txt", "--out"), "--out", fresh / "afile/books")]:
        assert f"{opt} {dest}: {fresh / 'afile'} is a file, not a folder" in user_error(*args, dest), args
    # a read-only folder: root writes anywhere, so the check asks os.access(W_OK), simulated here for one folder
    (fresh / "ro").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == fresh / "ro" and mode & os.W_OK else real(p, mode, *a, **k))
    for args, opt, dest in [(ev + ("--predictions",), "--predictions", fresh / "ro/p.jsonl"),
                            (("export", "--run", run, "--out"), "--out", fresh / "ro/new/model"),
                            (("book", "--run", run, "--book", fresh / "none.txt", "--out"), "--out", fresh / "ro/books")]:
        assert f"{opt} {dest}: cannot write in {fresh / 'ro'} (no write permission)" in user_error(*args, dest), args
    assert list((fresh / "ro").iterdir()) == []
    rc, err = run_cli(*ev, "--max-examples", "-1")
    assert rc == 2 and "argument --max-examples: expected 1 ... " in err and "Traceback" not in err, (rc, err)
