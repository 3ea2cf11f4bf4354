"""Data path: tokenization + collation per batch, on the fly (textmtl collators) and from pre-tokenized ids,
against the training step it feeds."""
from __future__ import annotations

import time

import torch

from .common import BenchSize, median


def pretokenize(tokenizer, items, max_source_length: int, max_target_length: int) -> list[dict]:
    "Tokenize summarization items once (truncated, unpadded id lists): what a cache of the dataset would hold."
    enc = lambda texts, n: tokenizer.hf(list(texts), truncation=True, max_length=n)["input_ids"]
    src = enc((it["source"] for it in items), max_source_length)
    tgt = enc((it["target"] for it in items), max_target_length)
    return [{"source_ids": s, "summary_ids": t} for s, t in zip(src, tgt)]


def _pad(seqs: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), value, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long); mask[i, :len(s)] = 1
    return ids, mask


class PretokenizedSummarizationCollator:
    "The batch `Seq2SeqCollator` makes, from pre-tokenized items: padding only, no tokenizer call."
    def __init__(self, pad_token_id: int, decoder_start_token_id: int):
        self.pad, self.start = pad_token_id, decoder_start_token_id

    def __call__(self, items) -> dict[str, torch.Tensor]:
        src, src_mask = _pad([it["source_ids"] for it in items], self.pad)
        tgt, tgt_mask = _pad([it["summary_ids"] for it in items], self.pad)
        labels = tgt.masked_fill(tgt_mask == 0, -100)
        dec = torch.full_like(tgt, self.pad)
        dec[:, 0], dec[:, 1:] = self.start, tgt[:, :-1]
        return {"input_ids": src, "attention_mask": src_mask, "decoder_input_ids": dec,
                "decoder_attention_mask": tgt_mask, "labels": labels}


def run(size: BenchSize, tokenizer, items: dict, step_s: dict, reps=None, n_batches: int = 4) -> dict:
    """Seconds per batch of each collation path (median over `reps` x `n_batches` different batches) and its share
    of the textmtl step time `step_s[task]`; target: under 5%. Checks that the pre-tokenized path gives the very
    same tensors as the textmtl collator."""
    from textmtl.data.dataloader import Seq2SeqCollator, MultiLabelCollator, SingleLabelCollator
    reps = reps or size.reps
    md = tokenizer.metadata
    res = {}
    paths = {
        "summarization": (Seq2SeqCollator(tokenizer, size.src_len, size.tgt_len), items["summarization"], size.batch),
        "emotion": (MultiLabelCollator(tokenizer, size.cls_len), items["emotion"], size.cls_batch),
        "topic": (SingleLabelCollator(tokenizer, size.cls_len), items["topic"], size.cls_batch),
    }
    pool = items["summarization"]
    t0 = time.perf_counter()
    cached = pretokenize(tokenizer, pool, size.src_len, size.tgt_len)
    pretok_s = time.perf_counter() - t0
    pre = PretokenizedSummarizationCollator(md.pad_token_id, md.decoder_start_token_id)
    for i in range(0, len(pool) - size.batch + 1, size.batch):        # same tensors, batch by batch
        a, b = paths["summarization"][0](pool[i:i + size.batch]), pre(cached[i:i + size.batch])
        assert all(torch.equal(a[k], b[k]) for k in b), "pre-tokenized collation differs from Seq2SeqCollator"   # its tensors (the collator also keeps the texts)
    runs = {f"{t}:on_the_fly": (c, its, B) for t, (c, its, B) in paths.items()}
    runs["summarization:pretokenized"] = (pre, cached, size.batch)
    for name, (collate, its, B) in runs.items():
        nb = max(1, min(n_batches, len(its) // B))
        collate(its[:B])                                              # warm-up
        times = []
        for _ in range(reps):
            for j in range(nb):
                t0 = time.perf_counter(); collate(its[j * B:(j + 1) * B]); times.append(time.perf_counter() - t0)
        task = name.split(":")[0]
        s = median(times)
        share = s / step_s[task] if step_s.get(task) else None
        res[name] = {"median_s": s, "step_s": step_s.get(task), "share": share, "target": 0.05,
                     "met": None if share is None else share < 0.05, "examples_per_s": B / s}
    res["pretokenize_s_per_example"] = pretok_s / len(pool)
    return res
