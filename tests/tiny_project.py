"""A tiny, self-contained textmtl project in a temp folder, for the end-to-end reliability tests.

Processed JSONL written directly (a few dozen synthetic rows per task and split, so nothing is downloaded or
converted), a data config pointing at it with no download items, and a training YAML for a tiny model that trains in
seconds on CPU. The tokenizer is the real bart-base one from the datasets mirror (`TEXTMTL_MIRROR`).
"""
import hashlib, json, os, random
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("summarization", "emotion", "topic")
EMOTIONS = ("anger", "joy", "neutral", "sadness")
TOPICS = ("Business", "Sci/Tech", "Sports", "World")
WORDS = {"anger": "furious outraged angry", "joy": "happy delighted glad", "neutral": "okay fine plain",
         "sadness": "sad gloomy tearful", "Business": "market shares profit", "Sci/Tech": "software chip research",
         "Sports": "match goal season", "World": "minister election border"}


def rows(task, n, seed):
    rng, out = random.Random(f"{task}-{seed}"), []
    for i in range(n):
        if task == "summarization":
            topic = rng.choice(TOPICS)
            words = " ".join(rng.choice(WORDS[topic].split()) for _ in range(12))
            out.append({"source": f"Report {i}: {words}.", "summary": f"{topic} {WORDS[topic].split()[0]}."})
        elif task == "emotion":
            labs = sorted(set(rng.sample(EMOTIONS, rng.choice((1, 1, 2)))))
            words = " ".join(rng.choice(WORDS[l].split()) for l in labs for _ in range(3))
            out.append({"text": f"I am {words} today", "emotions": labs})
        else:
            t = rng.choice(TOPICS)
            out.append({"text": "News: " + " ".join(rng.choice(WORDS[t].split()) for _ in range(6)), "topic": t})
    # make sure every label appears in every split (val/test labels must be known to train)
    if task == "emotion": out[:len(EMOTIONS)] = [{"text": f"I am {WORDS[e]}", "emotions": [e]} for e in EMOTIONS]
    if task == "topic": out[:len(TOPICS)] = [{"text": f"News: {WORDS[t]}", "topic": t} for t in TOPICS]
    return out


def write_jsonl(path, records):
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def write_processed(processed, n=(32, 8, 8), tasks=TASKS):
    for task in tasks:
        for split, k in zip(("train", "val", "test"), n):
            write_jsonl(Path(processed) / task / f"{split}.jsonl", rows(task, k, split))


def make_project(tmp, tasks=TASKS, n=(32, 8, 8), **trainer):
    "Write processed data, data config and training YAML under `tmp`; returns the training YAML path."
    tmp = Path(tmp)
    write_processed(tmp / "processed", n, tasks)
    data = yaml.safe_load((ROOT / "configs/data/datasets.yaml").read_text())
    data.update(raw_dir=str(tmp / "raw"), processed_dir=str(tmp / "processed"))
    data["tokenizer"].update(max_length=64, max_target_length=16)
    data["downloads"] = {"datasets": [], "books": []}
    (tmp / "datasets.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    run = {
        "output_dir": str(tmp / "run"), "data_config": str(tmp / "datasets.yaml"), "tasks": list(tasks),
        "data": {"batch_size": {t: 4 for t in tasks}, "max_source_length": 32, "max_target_length": 8},
        "model": {"arch": "bart", "d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
                  "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "dropout": 0.1,
                  "attention_dropout": 0.0, "activation_dropout": 0.0, "max_position_embeddings": 64},
        "trainer": {"lr": 3e-3, "max_steps": 6, "warmup_steps": 1, "eval_every": 3, "eval_max_batches": 1,
                    "log_every": 1, "max_new_tokens": 3, "progress_bar": False, "device": "cpu", "seed": 1,
                    "sampling": "round_robin", **trainer},
        "evaluation": {"num_beams": 1, "max_new_tokens": 3, "no_repeat_ngram_size": 0},
        "snapshots": {"texts": 1, "max_new_tokens": 3},   # taken (runs are checked with them), for one text: fast
    }
    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(run, sort_keys=False))
    return cfg


def snapshot(folder) -> dict:
    "`{relative path: sha256}` of every file under `folder` (to show that nothing was overwritten)."
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def subprocess_env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cli(*args):
    "(exit status, stdout, stderr) of `textmtl ARGS` run in this process; a traceback fails the test."
    import contextlib, io
    from textmtl.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()
