"""Build a tiny, locally trained GPT-2 (model + byte-level BPE tokenizer) for the tests.

The tests cannot reach the Hugging Face Hub, so instead of the real ``gpt2`` we train a
~130k-parameter GPT-2 in a few seconds that has memorised a handful of search-box phrases:
greedy decoding from ``"san"`` yields ``"san francisco weather is good in april?"``.
``install_in_hf_cache`` then lays it out as ``openai-community/gpt2`` in an offline HF cache.

Run ``python tests/tiny_gpt2.py`` to build one and eyeball its greedy continuations.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections import Counter

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

EOS = "<|endoftext|>"

# Lower-case, search-box-like phrases the model memorises. The francisco phrase appears
# three times so that it wins the greedy "san" -> " francisco" / " diego" / " jose" branch.
PHRASES: list[str] = [
    "san francisco weather is good in april?",
    "san francisco weather is good in april?",
    "san francisco weather is good in april?",
    "san diego zoo tickets",
    "san jose airport parking",
    "seoul subway map",
    "the best way to learn python is to practice every day.",
    "new york pizza near me",
    "how to make cold brew coffee at home",
    "weather tomorrow in london",
    "cheap flights to tokyo",
    "python list comprehension example",
    "what time is it in sydney",
    "서울 날씨는 오늘 맑아요",
    "i love pizza 🍕🍕",
]

# Extra text only used to train the tokenizer, so its merges are not phrase-shaped only.
_EXTRA_TEXT: list[str] = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How are you today?",
    "I love pizza 🍕🍕 and sushi 🍣.",
    "서울 날씨는 오늘 맑아요",
    "부산 바다가 보고 싶어요",
    "Numbers like 42, 3.14 and 2024 appear too.",
    "    indented text\twith tabs\nand newlines",
    "Café crème, naïve façade — déjà vu ✨",
]

# 256 byte symbols + <|endoftext|> + 93 merges. Small on purpose: English words merge, but
# Korean stays split *inside* characters, so some generated tokens are incomplete UTF-8
# (exercises streaming decode); "🍕" happens to be one whole token.
VOCAB_SIZE = 350
SEED = 0


def _train_tokenizer() -> GPT2Tokenizer:
    # Same pre-tokenizer/decoder as GPT2Tokenizer, so the tokenizer reloaded from disk
    # (which GPT2Tokenizer rebuilds from vocab + merges) tokenizes exactly as during training.
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=[EOS],  # id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: any Unicode encodes
        show_progress=False,
    )
    bpe.train_from_iterator(PHRASES + _EXTRA_TEXT, trainer=trainer)
    spec = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["merges"]]
    return GPT2Tokenizer(
        vocab=spec["vocab"],
        merges=merges,
        unk_token=EOS,
        bos_token=EOS,
        eos_token=EOS,
        model_max_length=64,  # = n_positions, like the real gpt2 (1024 / 1024)
    )


def _training_batch(tok: GPT2Tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Each phrase GPT-2 style (eos + phrase + eos) and also without the leading eos,
    since callers may or may not prepend a bos token to the prompt."""
    eos = tok.eos_token_id
    seqs = []
    for phrase in PHRASES:
        ids = tok(phrase).input_ids + [eos]
        seqs += [[eos] + ids, ids]
    width = max(map(len, seqs))
    input_ids = torch.full((len(seqs), width), eos)
    labels = torch.full((len(seqs), width), -100)  # -100: padding is ignored by the loss
    for i, s in enumerate(seqs):
        input_ids[i, : len(s)] = torch.tensor(s)
        labels[i, : len(s)] = torch.tensor(s)
    return input_ids, labels


def _greedy_targets(labels: torch.Tensor) -> torch.Tensor:
    """Like labels, but each token replaced by what a perfect greedy memoriser predicts there:
    the most frequent continuation of that exact prefix in the batch (-100 if none or tied)."""
    rows = [[t for t in row if t != -100] for row in labels.tolist()]
    counts: dict[tuple[int, ...], Counter] = {}
    for r in rows:
        for j in range(1, len(r)):
            counts.setdefault(tuple(r[:j]), Counter())[r[j]] += 1
    targets = torch.full_like(labels, -100)
    for i, r in enumerate(rows):
        for j in range(1, len(r)):
            top = counts[tuple(r[:j])].most_common(2)
            if len(top) == 1 or top[0][1] > top[1][1]:
                targets[i, j] = top[0][0]
    return targets


def _train(model: GPT2LMHeadModel, input_ids: torch.Tensor, labels: torch.Tensor) -> GPT2LMHeadModel:
    """Full-batch AdamW until greedy decoding reproduces the phrases, plus a 20% margin."""
    targets = _greedy_targets(labels)[:, 1:]  # aligned with the logits predicting them
    check = targets != -100
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    stop_at = None
    for step in range(1000):
        logits = model(input_ids=input_ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:])
        # Memorised once every unambiguous next token is the argmax.
        if stop_at is None and (logits.argmax(-1)[check] == targets[check]).all():
            stop_at = step + step // 5
        if step == stop_at:
            return model.eval()
        opt.zero_grad()
        loss.backward()
        opt.step()
    raise RuntimeError(f"tiny GPT-2 did not memorise the phrases (loss {loss.item():.3f})")


def build_tiny_gpt2(out_dir: pathlib.Path) -> pathlib.Path:
    """Train and save a tiny GPT-2 into out_dir (save_pretrained, safetensors) plus its tokenizer; return out_dir."""
    out_dir = pathlib.Path(out_dir)
    tok = _train_tokenizer()
    for s in ["서울 날씨는 오늘 맑아요", "I love pizza 🍕🍕", "  leading spaces", "未知の文字 ∑ 🦄"]:
        assert tok.decode(tok(s).input_ids) == s, s

    eos = tok.eos_token_id
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,  # small on purpose: tests exercise context-window truncation
        n_embd=64,
        n_layer=2,
        n_head=2,
        resid_pdrop=0.0,  # no dropout: faster memorisation, deterministic training
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    # fork_rng: seed locally without disturbing the caller's global RNG state. One thread:
    # float reductions then do not depend on OMP_NUM_THREADS, so every run on a given
    # machine yields identical weights (costs ~1 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(SEED)
            model = _train(GPT2LMHeadModel(config), *_training_batch(tok))
    finally:
        torch.set_num_threads(threads)

    gen = model.generation_config
    gen.bos_token_id = gen.eos_token_id = gen.pad_token_id = eos
    prompt = tok("san", return_tensors="pt").input_ids  # the property the tests rely on
    with torch.no_grad():
        text = tok.decode(model.generate(prompt, do_sample=False, max_new_tokens=12)[0])
    assert text.startswith(PHRASES[0]), text

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)  # safetensors by default -> model.safetensors
    tok.save_pretrained(out_dir)
    return out_dir


def install_in_hf_cache(
    model_dir: pathlib.Path, hf_home: pathlib.Path, repo_id: str = "openai-community/gpt2"
) -> pathlib.Path:
    """Lay model_dir's files out in a real Hugging Face hub cache under hf_home/hub
    (models--<org>--<name>/{blobs,snapshots/<commit>,refs/main}) so that, with HF_HOME=hf_home and
    HF_HUB_OFFLINE=1, snapshot_download(repo_id, local_files_only=True) and from_pretrained(repo_id)
    find it. Idempotent. Return the snapshot path."""
    model_dir = pathlib.Path(model_dir)
    repo = pathlib.Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    files = sorted(p for p in model_dir.iterdir() if p.is_file())
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    # A fake but stable 40-hex "commit": same files -> same snapshot folder.
    commit = hashlib.sha1(json.dumps(hashes, sort_keys=True).encode()).hexdigest()

    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for p in files:
        blob = repo / "blobs" / hashes[p.name]
        if not blob.exists():
            blob.write_bytes(p.read_bytes())
        link = snapshot / p.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.join("..", "..", "blobs", hashes[p.name]))  # relative, as the hub does
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


if __name__ == "__main__":
    import tempfile
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = build_tiny_gpt2(pathlib.Path(tmp) / "tiny-gpt2")
        print(f"built in {time.perf_counter() - start:.1f}s: {sorted(p.name for p in path.iterdir())}")
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        print(type(tok).__name__, "vocab", len(tok), "params", sum(p.numel() for p in model.parameters()))
        for prompt in ["san", "seoul", "the best way to learn python is", "서울", "i love"]:
            ids = tok(prompt, return_tensors="pt").input_ids
            out = model.generate(ids, do_sample=False, max_new_tokens=20)
            print(repr(prompt), "->", repr(tok.decode(out[0])))
