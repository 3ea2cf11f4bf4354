"""Simple baselines on the same processed splits that `make train` evaluates on, so its numbers have a yardstick:

* summarization: Lead-3 (the first three sentences of the article), ROUGE through textmtl's own `rouge_scores`;
* emotion: TF-IDF (1-2 grams) + one-vs-rest logistic regression, global threshold and per-label thresholds tuned
  on the validation split exactly as textmtl tunes its own;
* topic: TF-IDF (1-2 grams) + logistic regression.

    python -m bench.baselines                 # reads data/processed (run `textmtl prepare` first)
    python -m bench.baselines --config configs/training/quick.yaml   # the test slices of that config (default)
"""
from __future__ import annotations

import argparse, sys, time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1])); __package__ = "bench"

import numpy as np

from .common import ROOT


def lead3(sources) -> list[str]:
    from textmtl.training.metrics import split_sentences
    return [" ".join(split_sentences(s)[:3]) for s in sources]


def run(config: str = "configs/training/quick.yaml", log=print) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from textmtl.data.dataset import load_task_datasets
    from textmtl.data.preprocessing import load_data_config
    from textmtl.config import resolve_path
    from textmtl.training.metrics import best_threshold, emotion_f1, per_label_thresholds, rouge_scores, topic_accuracy
    from textmtl.run.config import load_run_config
    cfg = load_run_config(ROOT/config)
    data_cfg = load_data_config(resolve_path(cfg.data_config, ROOT), ROOT)
    # the test (and val) caps of the config, all of train
    caps = {t: {s: n for s, n in per.items() if s != "train"} for t, per in cfg.data.max_examples.items()}
    ds = load_task_datasets(resolve_path(data_cfg.processed_dir, ROOT), cfg.tasks, caps)
    out = {}
    t0 = time.perf_counter()
    if "summarization" in ds:
        test = ds["summarization"]["test"]
        out["summarization"] = rouge_scores(lead3(test.sources), test.summaries)
        log(f"summarization, Lead-3 on {len(test)} test articles: ROUGE-1/2/Lsum "
            + " / ".join(f"{out['summarization'][k]:.1f}" for k in ("rouge1", "rouge2", "rougeLsum")))
    tfidf = lambda: TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000)
    if "emotion" in ds:
        tr, va, te = (ds["emotion"][s] for s in ("train", "val", "test"))
        vec = tfidf().fit(tr.texts)
        clf = OneVsRestClassifier(LogisticRegression(max_iter=1000, C=4.0), n_jobs=1).fit(vec.transform(tr.texts), tr.labels.numpy())
        pv, pt = clf.predict_proba(vec.transform(va.texts)), clf.predict_proba(vec.transform(te.texts))
        thr, _ = best_threshold(va.labels.numpy(), pv)
        per = per_label_thresholds(va.labels.numpy(), pv, fallback=thr)
        g, p = emotion_f1(te.labels.numpy(), pt, thr), emotion_f1(te.labels.numpy(), pt, per)
        out["emotion"] = {"global": {**g, "threshold": thr}, "per_label": p}
        log(f"emotion, TF-IDF + logistic regression on {len(te)} test comments: micro/macro-F1 {g['micro_f1']:.3f} / "
            f"{g['macro_f1']:.3f} (global threshold {thr}), {p['micro_f1']:.3f} / {p['macro_f1']:.3f} (per-label thresholds)")
    if "topic" in ds:
        tr, te = ds["topic"]["train"], ds["topic"]["test"]
        vec = tfidf().fit(tr.texts)
        clf = LogisticRegression(max_iter=2000, C=10.0).fit(vec.transform(tr.texts), tr.labels.numpy())
        out["topic"] = {"accuracy": topic_accuracy(te.labels.numpy(), clf.predict(vec.transform(te.texts)))}
        log(f"topic, TF-IDF + logistic regression on {len(te)} test articles ({len(tr)} train): accuracy {out['topic']['accuracy']:.3f}")
    log(f"({time.perf_counter() - t0:.0f} s)")
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/training/quick.yaml")
    run(p.parse_args().config)
