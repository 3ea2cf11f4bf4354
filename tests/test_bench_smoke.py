"""Smoke run of bench/ at the tiny size with one repetition, so the benchmark scripts cannot rot.

No timing assertions: only that every benchmark runs end to end and that the checks the benchmarks rely on hold
(same loss for the same weights, identical greedy outputs, exact FLOP count, pre-tokenized == on-the-fly batches).
"""
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_run_all_tiny(tmp_path, mirror):
    from bench.run_all import main
    out = tmp_path / "bench.json"
    res = main(["--device", "cpu", "--sizes", "tiny", "--reps", "1", "--only", "train,gen,data,flops",
                "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["table"] == res["table"] and "train step" in res["table"]
    r = res["sizes"]["tiny"]
    assert r["data_source"] == "mirror"
    dp = r["data_path"]
    assert dp["summarization:on_the_fly"]["share"] > 0 and dp["summarization:pretokenized"]["median_s"] > 0
    tr = r["train"]
    assert tr["loss_hf"] == pytest.approx(tr["loss_textmtl"], rel=1e-5)       # same weights, same batch
    assert {"hf", "textmtl", "textmtl:emotion", "textmtl:topic"} <= set(tr["median_s"])
    assert all(v > 0 for v in tr["median_s"].values()) and tr["ratio"] > 0
    g = r["generation"]
    assert g["beam1"]["identical"], "greedy outputs of textmtl and HF differ on the same weights"
    assert g["beam4"]["tokens_per_s"]["hf"] > 0 and g["beam4"]["tokens_per_s"]["textmtl"] > 0
    f = r["flops"]
    # every matmul outside CPU SDPA is seen by FlopCounterMode: the analytic count must match it exactly
    assert f["flop_counter"] == f["flops"]["total"] - f["flops"]["attention_total"]
    assert f["peak"]["flops_per_s"] > 0 and 0 < f["textmtl"]["fraction_of_peak"]


def test_data_path_pretokenized_matches_collator(mirror):
    from bench import data_path
    from bench.common import get_tokenizer, load_size, raw_items
    size = load_size("tiny")
    tok = get_tokenizer()
    items = raw_items(8)
    r = data_path.run(size, tok, items, {"summarization": 1.0, "emotion": 1.0, "topic": 1.0}, reps=1)
    assert {"summarization:on_the_fly", "summarization:pretokenized", "emotion:on_the_fly", "topic:on_the_fly"} <= set(r)
    assert r["summarization:pretokenized"]["median_s"] > 0 and r["pretokenize_s_per_example"] > 0


def test_memory_worker_tiny():
    from bench import memory
    r = memory.measure("textmtl", "train", "tiny", device="cpu", threads=1)
    assert r["peak_bytes"] >= r["baseline_bytes"] > 0 and r["delta_bytes"] >= 0


def test_sizes_and_flops_formula():
    from bench.common import load_size
    from bench.flops import step_flops
    q, d = load_size("quick"), load_size("default", device="cpu")
    assert q.model["d_model"] == 256 and q.model["encoder_layers"] == 2 and q.batch >= 1
    assert d.model["d_model"] == 768 and d.batch <= 2 and any("on CPU" in n for n in d.notes)
    f = step_flops(dict(d_model=4, encoder_ffn_dim=8, decoder_ffn_dim=8, encoder_layers=1, decoder_layers=1),
                   B=1, S=2, T=1, V=10)
    # hand count: enc qkv 2*2*4*12=192, out 64, ffn 2*128=256; dec self 96+32, cross q 32, kv 2*2*4*8=128, out 32,
    # ffn 128; attention enc 2*2*1*2*2*4=64, dec 2*2*1*1*3*4=48; lm head 2*1*4*10=80
    assert f["forward"] == {"encoder_linear": 512, "encoder_attention": 64, "decoder_linear": 448,
                            "decoder_attention": 48, "lm_head": 80}
    assert f["total"] == 3 * 1152


def test_bert2bert_bench_smoke(mirror):
    "The warm-started model against its EncoderDecoderModel twin: real MiniLM weights, identical greedy outputs."
    from bench import bert2bert
    r = bert2bert.run(reps=1, decoder_layers=1, batch=2, src_len=32, tgt_len=8, new_tokens=4, log=lambda *a: None, bf16=True)
    assert r["train"]["median_s"]["hf"] > 0 and r["train"]["median_s"]["textmtl"] > 0
    b = r["bf16"]                                   # forced bf16 rows: every step timed, the losses close to float32's
    assert set(b["median_s"]) == {"textmtl:float32", "textmtl:bf16", "textmtl:autocast", "hf:autocast"}
    assert abs(b["loss_after"]["textmtl:bf16"] - b["loss_after"]["textmtl:float32"]) < 0.05 * b["loss_after"]["textmtl:float32"]
    assert r["beam1"]["identical"], "greedy outputs of textmtl and its BERT2BERT twin differ on the same weights"
    assert r["beam4"]["tokens_per_s"]["textmtl"] > 0


def test_lead3():
    from bench.baselines import lead3
    assert lead3(["One sentence here. Two sentences here. Three here. Four here."]) == [
        "One sentence here. Two sentences here. Three here."]
    assert lead3(["Only one."]) == ["Only one."]


def test_batching_plans():
    "bench/batching.py's plans: both cover every example once; the budget pads less."
    import numpy as np
    from bench.batching import padding_share, plans
    L = np.random.default_rng(0).integers(4, 70, size=500)
    p = plans(L, 32, 32 * 40)
    for batches in p.values(): assert sorted(i for b in batches for i in b) == list(range(500))
    assert padding_share(p["budget"], L) < padding_share(p["fixed"], L) / 3


def test_dtypes_tiny(mirror):
    "bench/dtypes.py end to end on one decoder layer, 2 tokens, batch 1: every dtype of textmtl and of its twin runs."
    from bench import dtypes
    r = dtypes.run(reps=1, new_tokens=2, decoder_layers=1, batches=(1,), beams=(1,), log=lambda *a: None)
    assert {k.split("|")[0] for k in r["rows"]} == {"textmtl:float32", "textmtl:bf16", "textmtl:int8", "hf:float32",
                                                  "hf:bf16 autocast", "hf:bf16 weights", "hf:int8"}
    assert all(v["tok_s"] > 0 for v in r["rows"].values()) and r["bandwidth_gbs"] > 0
    b = r["decode_bytes"]
    assert b["bf16"]["total"] * 2 == b["float32"]["total"] and b["int8"]["decoder"] < b["bf16"]["decoder"]
    assert "of limit" in dtypes.table(r)
