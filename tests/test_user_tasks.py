"""A user's own tasks, end to end through the command line (issue 18's "done when"): a module outside the project
registers a second sequence-to-sequence task (`headline`) and a classifier (`doc_kind`); a tiny run trains them with
summarization, `task_weights` for every task and the headline's own decoding settings; then `predict`, `evaluate`,
`export` and `Predictor.from_pretrained` serve all three.

The commands run in this process (`cli`, as `textmtl` would run them); the user's tasks leave the registry afterwards."""
import json, sys
from pathlib import Path

import yaml

from tiny_project import cli, make_project, write_jsonl

USER_MODULE = '''
from textmtl.tasks import Seq2SeqTask, SingleLabelTask, register_task
register_task(Seq2SeqTask("headline", short="hed", source_field="text", target_field="headline", description="a headline"))
register_task(SingleLabelTask("doc_kind", short="kin", text_field="text", label_field="kind", description="its kind"))
'''

KINDS = {"report": "market shares profit", "letter": "dear friend yours"}


def user_rows(task, n):
    out = []
    for i in range(n):
        kind = list(KINDS)[i % 2]
        words = " ".join(KINDS[kind].split() * 3)
        out.append({"text": f"Item {i}: {words}.", "headline": f"{kind} {i}"} if task == "headline"
                   else {"text": f"Item {i}: {words}.", "kind": kind})
    return out


def project(tmp: Path) -> Path:
    "The tiny project, with the user's module in `tmp/user` (outside the project) and its tasks' data and config."
    cfg_path = make_project(tmp, tasks=("summarization",))
    (tmp/"user").mkdir()
    (tmp/"user"/"my_tasks.py").write_text(USER_MODULE)
    for task in ("headline", "doc_kind"):
        for split, n in (("train", 16), ("val", 4), ("test", 4)): write_jsonl(tmp/"processed"/task/f"{split}.jsonl", user_rows(task, n))
    cfg = yaml.safe_load(cfg_path.read_text())
    tasks = ["summarization", "headline", "doc_kind"]
    cfg.update(task_modules=["my_tasks"], tasks=tasks)
    cfg["data"]["batch_size"] = {t: 4 for t in tasks}
    cfg["trainer"].update(task_weights={"summarization": 1.0, "headline": 2.0, "doc_kind": 1.0}, max_steps=6)
    cfg["evaluation"]["headline"] = {"max_new_tokens": 2}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg_path


def test_a_users_seq2seq_task_and_classifier_train_and_serve_everywhere(tmp_path):
    from textmtl.inference import Predictor
    from textmtl.tasks import REGISTRY
    cfg, run = project(tmp_path), tmp_path/"run"
    sys.path.insert(0, str(tmp_path/"user"))
    try:
        rc, out, err = cli("train", "--config", cfg)
        assert rc == 0, err
        m = json.loads((run/"metrics.json").read_text())
        assert {"headline/rouge1", "doc_kind/accuracy", "summarization/rouge1"} <= set(m["metrics"]), m["metrics"]
        assert sorted(m["samples"]) == ["headline", "summarization"] and "headline" in m["samples"]["headline"][0]
        rc, out, err = cli("predict", "--run", run, "Item 3: dear friend yours dear friend.")
        row = json.loads(out)
        assert rc == 0 and {"summary", "headline", "doc_kind"} <= set(row), (row, err)
        assert len(row["headline"].split()) <= 2, row                 # evaluation.headline.max_new_tokens: 2
        rc, out, err = cli("predict", "--run", run, "--tasks", "headline", "Item 3: dear friend.")
        assert rc == 0 and set(json.loads(out)) == {"headline"}, (out, err)
        rc, out, err = cli("predict", "--run", run, "--tasks", "title", "Item 3.")
        assert rc != 0 and "its tasks: summarization, headline, doc_kind" in err and "Traceback" not in err, err
        rc, out, err = cli("evaluate", "--run", run)
        assert rc == 0 and "headline/rouge1" in out and "doc_kind/accuracy" in out, (out, err)
        rc, out, err = cli("export", "--run", run, "--out", tmp_path/"exported")
        assert rc == 0, err
        p = Predictor.from_pretrained(tmp_path/"exported")
        assert p.tasks == ("summarization", "headline", "doc_kind"), p.tasks
        assert {"summary", "headline", "doc_kind"} <= set(p.predict(["Item 5: market shares profit."])[0])
        from textmtl.app import answer_batch, build_app
        (written, labels), = answer_batch(p, [("Item 5: market shares profit.", 1, 8)])   # the app's answer: both texts
        assert len(written) == 2 and all(isinstance(w, str) for w in written) and any(labels), (written, labels)
        assert {"summary", "headline"} <= {getattr(b, "elem_id", None) for b in build_app(p).blocks.values()}
    finally:                                   # the user's tasks leave the registry of this test process
        sys.path.remove(str(tmp_path/"user")); sys.modules.pop("my_tasks", None)
        for t in ("headline", "doc_kind"): REGISTRY.pop(t, None)
