"""What every benchmark shares: sizes (from configs/training/*.yaml when present), the twin models, real batches,
interleaved timing."""
from __future__ import annotations

import copy, csv, dataclasses, gc, json, math, os, random, statistics, time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------------- sizes
# The model sizes of the issue; configs/training/<name>.yaml overrides them where it exists.
_BUILTIN = {
    "tiny": dict(model=dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64),
                 batch=2, src_len=32, tgt_len=8, cls_batch=2, cls_len=16),
    "quick": dict(model=dict(d_model=256, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                             decoder_attention_heads=4, encoder_ffn_dim=1024, decoder_ffn_dim=1024),
                  batch=16, src_len=256, tgt_len=64, cls_batch=32, cls_len=64),
    "default": dict(model=dict(d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
                               decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072),
                    batch=8, src_len=512, tgt_len=128, cls_batch=64, cls_len=64),
}
_MODEL_KEYS = ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
               "encoder_ffn_dim", "decoder_ffn_dim", "dropout", "attention_dropout", "activation_dropout",
               "activation_function", "max_position_embeddings")
# On a CPU the bart-base sizes would take minutes per step: smaller batch, fewer tokens generated, fewer reps.
_CPU_DEFAULT = dict(batch=2, cls_batch=8, max_new_tokens=32, reps=3)
REPS = {"cpu": 3, "cuda": 5}
_CONFIG_FOR = {"quick": "scratch"}


@dataclass
class BenchSize:
    "One benchmark size: model sizes (BART semantics), batch shapes, generation length, repetitions."
    name: str
    model: dict
    batch: int
    src_len: int
    tgt_len: int
    cls_batch: int
    cls_len: int
    max_new_tokens: int
    reps: int
    source: str = "built-in"
    config_arch: str = "bart"
    notes: list = field(default_factory=list)


def load_size(name: str, device: str = "cpu", reps: Optional[int] = None, config: Optional[str] = None) -> BenchSize:
    """The sizes called `name` ("tiny", "quick", "default"): built-in values, replaced by the model/data sections of
    `config` or configs/training/<name>.yaml when that file exists; CPU runs shrink the default size (see notes)."""
    base = copy.deepcopy(_BUILTIN.get(name, _BUILTIN["quick"]))
    s = BenchSize(name=name, model=dict(dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
                                        activation_function="gelu", max_position_embeddings=1024, **base["model"]),
                  batch=base["batch"], src_len=base["src_len"], tgt_len=base["tgt_len"], cls_batch=base["cls_batch"],
                  cls_len=base["cls_len"], max_new_tokens=base["tgt_len"],
                  reps=REPS["cuda" if str(device).startswith("cuda") else "cpu"])
    # "quick" is the from-scratch BART-sized comparison, whose sizes live in scratch.yaml since quick.yaml became the
    # warm-started BERT2BERT model (benchmarked against its own twin by bench/bert2bert.py, size "bert2bert")
    path = Path(config) if config else ROOT / "configs" / "training" / f"{_CONFIG_FOR.get(name, name)}.yaml"
    if name != "tiny" and path.is_file():
        import yaml
        cfg = yaml.safe_load(path.read_text()) or {}
        m, d = cfg.get("model") or {}, cfg.get("data") or {}
        s.model.update({k: m[k] for k in _MODEL_KEYS if k in m})
        s.config_arch = m.get("arch", "bart")
        bs = d.get("batch_size")
        if isinstance(bs, dict):
            s.batch = int(bs.get("summarization", s.batch))
            s.cls_batch = int(bs.get("emotion", bs.get("topic", s.cls_batch)))
        elif isinstance(bs, int): s.batch = s.cls_batch = bs
        s.src_len = int(d.get("max_source_length", s.src_len))
        s.tgt_len = int(d.get("max_target_length", s.tgt_len))
        s.max_new_tokens = int((cfg.get("trainer") or {}).get("max_new_tokens", s.tgt_len))
        s.source = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    elif config:
        raise FileNotFoundError(f"--config {config}: no such file")
    if s.config_arch != "bart":
        s.notes.append(f"{s.name}: {s.source} trains arch {s.config_arch!r}; the HF comparison uses arch 'bart' "
                       f"with the same sizes (--variants times the '{s.config_arch}' arch as an extra textmtl row)")
    if name == "tiny": s.reps, s.max_new_tokens = 1, 4
    if name == "default" and not str(device).startswith("cuda"):
        for k, v in _CPU_DEFAULT.items():
            if getattr(s, k) > v:
                s.notes.append(f"{s.name} on CPU: {k} {getattr(s, k)} -> {v}")
                setattr(s, k, v)
    if reps is not None: s.reps = reps
    return s

# ---------------------------------------------------------------------------------------------------- models
def hf_config(size: BenchSize, vocab_size: int = 50265):
    """A transformers `BartConfig` with the sizes of `size` and the bart-base special ids. No forced eos: generate()
    merges unset (None) options of a call's GenerationConfig with the model's, so it must not be in the model's."""
    from transformers import BartConfig
    m = size.model
    return BartConfig(vocab_size=vocab_size, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                      decoder_start_token_id=2, forced_eos_token_id=None, **{k: m[k] for k in _MODEL_KEYS})


EMOTIONS = [f"emotion_{i}" for i in range(28)]
TOPICS = ["World", "Sports", "Business", "Sci/Tech"]


def enable_cpu_kernels(model):
    "textmtl's CPU fast paths, as the Trainer and Predictor switch them on (a no-op for a textmtl without the hook)."
    try: from textmtl.models.cpu_kernels import enable_cpu_kernels as enable
    except ImportError: return model
    return enable(model)


def build_pair(size: BenchSize, device="cpu", seed: int = 0):
    """(hf, ours): a `BartForConditionalGeneration` (SDPA attention) built from `hf_config(size)` with seeded random
    weights, and the textmtl `MultiTaskTransformer` importing exactly those weights (plus emotion/topic heads)."""
    from transformers import BartForConditionalGeneration
    from textmtl.models.factory import from_hf_bart
    torch.manual_seed(seed)
    cfg = hf_config(size)
    cfg._attn_implementation = "sdpa"
    hf = BartForConditionalGeneration(cfg).to(device)
    ours = from_hf_bart(hf, label_vocab={"emotion": EMOTIONS, "topic": TOPICS}).to(device)
    return hf, enable_cpu_kernels(ours)


def build_textmtl_arch(size: BenchSize, arch: str, device="cpu", seed: int = 0):
    "A fresh textmtl model of `size` with architecture `arch` (e.g. the pre-LN 'textmtl' of quick.yaml)."
    from textmtl.models.transformer import ModelConfig, MultiTaskTransformer
    torch.manual_seed(seed)
    c = ModelConfig(arch=arch, **{k: size.model[k] for k in _MODEL_KEYS})
    return enable_cpu_kernels(MultiTaskTransformer(c, 50265, 1, 2, 2, num_labels={"emotion": len(EMOTIONS), "topic": len(TOPICS)}).to(device))

# ---------------------------------------------------------------------------------------------------- data
def mirror() -> Optional[Path]:
    m = os.environ.get("TEXTMTL_MIRROR") or str(ROOT.parent / "shared" / "datasets")
    return Path(m) if Path(m).is_dir() else None


def get_tokenizer():
    "The textmtl BART tokenizer (offline, from the mirror), or None when it cannot be found."
    try:
        from textmtl.data.tokenization import Tokenizer
        if "TEXTMTL_MIRROR" not in os.environ and mirror(): os.environ["TEXTMTL_MIRROR"] = str(mirror())
        return Tokenizer()
    except Exception:
        return None


def raw_items(n: int) -> dict[str, list[dict]]:
    "`n` real raw items per task from the mirror (CNN/DailyMail, GoEmotions, AG News); {} without a mirror."
    m = mirror()
    if m is None: return {}
    out = {"summarization": [], "emotion": [], "topic": []}
    with open(m / "cnn_dailymail" / "test_pointergen.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out["summarization"].append({"source": r["article"], "target": r["highlights"].replace("\n", " ")})
            if len(out["summarization"]) >= n: break
    with open(m / "goemotions" / "train.tsv", encoding="utf-8") as f:
        for line in f:
            text, ids, _ = line.rstrip("\n").split("\t")
            y = torch.zeros(len(EMOTIONS)); y[[int(i) for i in ids.split(",")]] = 1.0
            out["emotion"].append({"text": text, "labels": y})
            if len(out["emotion"]) >= n: break
    with open(m / "ag_news" / "test.csv", encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            out["topic"].append({"text": f"{row[1]}. {row[2]}".replace("\\", " "), "label": int(row[0]) - 1})
            if len(out["topic"]) >= n: break
    return out


def make_batches(size: BenchSize, tokenizer=None, device="cpu") -> dict[str, dict]:
    """One batch per task with the shapes of `size`: real mirror texts through the textmtl collators when the
    tokenizer and mirror are there (padding as in training), else random ids of the full lengths."""
    items = raw_items(max(size.batch, size.cls_batch)) if tokenizer is not None else {}
    if items:
        from textmtl.data.dataloader import Seq2SeqCollator, MultiLabelCollator, SingleLabelCollator
        b = {"summarization": Seq2SeqCollator(tokenizer, size.src_len, size.tgt_len)(items["summarization"][:size.batch]),
             "emotion": MultiLabelCollator(tokenizer, size.cls_len)(items["emotion"][:size.cls_batch]),
             "topic": SingleLabelCollator(tokenizer, size.cls_len)(items["topic"][:size.cls_batch])}
    else:
        g = torch.Generator().manual_seed(0)
        ids = lambda B, T: torch.cat([torch.zeros(B, 1, dtype=torch.long), torch.randint(4, 50000, (B, T - 2), generator=g),
                                      torch.full((B, 1), 2)], 1)
        labels = ids(size.batch, size.tgt_len)
        dec = torch.cat([torch.full((size.batch, 1), 2), labels[:, :-1]], 1)
        ones = lambda x: torch.ones_like(x)
        src = ids(size.batch, size.src_len)
        b = {"summarization": dict(input_ids=src, attention_mask=ones(src), decoder_input_ids=dec,
                                   decoder_attention_mask=ones(labels), labels=labels)}
        for t, n in (("emotion", len(EMOTIONS)), ("topic", len(TOPICS))):
            x = ids(size.cls_batch, size.cls_len)
            y = (torch.rand(size.cls_batch, n, generator=g) < 0.1).float() if t == "emotion" else torch.randint(0, n, (size.cls_batch,), generator=g)
            b[t] = dict(input_ids=x, attention_mask=ones(x), labels=y)
    return {t: {k: v.to(device) if torch.is_tensor(v) else v for k, v in bb.items()} for t, bb in b.items()}

# ---------------------------------------------------------------------------------------------------- timing
def sync(device):
    if str(device).startswith("cuda"): torch.cuda.synchronize()


def interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1, device="cpu") -> dict[str, list[float]]:
    """Time each callable `reps` times, alternating between them (ABBA order: the first one changes every round)
    after `warmup` untimed rounds, so that all of them see the same machine load. Seconds per call."""
    names = list(fns)
    for _ in range(warmup):
        for n in names: fns[n](); sync(device)
    times = {n: [] for n in names}
    for r in range(reps):
        for n in (names if r % 2 == 0 else names[::-1]):
            sync(device); t0 = time.perf_counter()
            fns[n](); sync(device)
            times[n].append(time.perf_counter() - t0)
    return times


def median(xs) -> float: return float(statistics.median(xs))


def free(*objs):
    for o in objs: del o
    gc.collect()
    if torch.cuda.is_available(): torch.cuda.empty_cache()
