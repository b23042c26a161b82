"""Our compact torch models (autocomplete.engine.gpt2, .llama) written as ONNX graphs for ONNX Runtime on the CPU,
one per architecture, in the class of onnxruntime-genai's model builder: each layer is a few of ONNX Runtime's fused
ops (GroupQueryAttention with the keys and values written in place and the rotary embedding inside, SkipLayer-
Normalization or SkipSimplifiedLayerNormalization, FastGelu) around its matrix products; for int8 and int4, ONNX
Runtime's MatMulNBits quantizer on every weight matrix, the output head included; then ONNX Runtime's own graph
optimisation, saved. autocomplete.engine.onnx_run gives the interface and runs it.

The graph is written from the torch modules' own parameters and layout (Llama's query rows prescaled by
1/sqrt(head_dim) and its rotary pairs side by side, GPT-2's q, k, v in one matrix), so they stay the definition of
the model; tests/engine/test_onnx_export.py holds the graph's logits and keys to theirs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from autocomplete.engine.onnx_run import LOGITS_AT, MAX_KEYS, OUTPUTS, TOKENS, kv_names, session_options

PRECISIONS = ("fp32", "int8", "int4")
# Weights quantized in blocks along the input, each block its own scale and zero point (asymmetric: as faithful,
# and faster on ONNX Runtime's kernels); 8-bit in llama.cpp Q8_0's blocks of 32, but the product into q, k and v in
# blocks of 16, the one that makes the int8 model as faithful as Q8_0 for the least time (docs/speed.md, "Precision").
BLOCK = {8: 32, 4: 32}
FINER = {8: ("qkv",)}  # products (by the last part of their name) quantized in blocks of FINER_BLOCK
FINER_BLOCK = 16
SYMMETRIC = False
OPSET = 21
DATA = "model.data"  # the weights, beside model.onnx
WINDOWS = 2
MS = "com.microsoft"  # ONNX Runtime's contrib ops


class Graph:
    """Nodes and weights written in order; each op() returns its outputs' names."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self._names: dict[str, int] = {}
        self.max_keys: int | None = None  # the keys a run may read, where the graph bounds them

    def name(self, base: str) -> str:
        count = self._names[base] = self._names.get(base, -1) + 1
        return base if count == 0 else f"{base}.{count}"

    def weight(self, name: str, value) -> str:
        array = value.detach().float().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(array), self.name(name)))
        return self.weights[-1].name

    def op(self, op_type: str, inputs: list[str], name: str, outputs: int = 1, domain: str = "", **attrs
           ) -> list[str]:
        name = self.name(name)
        out = [f"{name}/out{i}" if i else name for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, out, name=name, domain=domain or None, **attrs))
        return out

    def matmul(self, x: str, linear: nn.Linear, name: str, bias: bool = True) -> str:
        """x @ W^T, W as the [in, out] weight MatMulNBits quantizes; the bias, if any and wanted, added."""
        y = self.op("MatMul", [x, self.weight(f"{name}.weight", linear.weight.t())], name)[0]
        if bias and linear.bias is not None:
            y = self.op("Add", [y, self.weight(f"{name}.bias", linear.bias)], f"{name}.add")[0]
        return y


def attention(g: Graph, qkv: str, layer: int, heads: int, kv_heads: int, rotary: tuple[str, str] | None,
              scale: float | None) -> str:
    """GroupQueryAttention on the packed q, k, v: this layer's keys and values written into its cache buffer in place
    (past and present are one buffer, onnx_run binds them so), each new token reading the keys attention_bias leaves
    it and its own causal past."""
    past_key, past_value = kv_names(layer, "past")
    present_key, present_value = kv_names(layer, "present")
    inputs = [qkv, "", "", past_key, past_value, "seqlens_k", "total_sequence_length"]
    inputs += [*rotary, "position_ids"] if rotary else ["", "", ""]
    inputs.append("attention_bias")
    attrs = {"num_heads": heads, "kv_num_heads": kv_heads, "do_rotary": int(rotary is not None)}
    if rotary:
        attrs["rotary_interleaved"] = 1
    if scale is not None:
        attrs["scale"] = float(scale)
    name = g.name(f"layers.{layer}.attention")
    g.nodes.append(helper.make_node("GroupQueryAttention", inputs, [name, present_key, present_value], name=name,
                                    domain=MS, **attrs))
    return name


def llama(model: nn.Module, g: Graph) -> str:
    """The final norm's output [1, T, dim]."""
    eps = model.norm.eps
    # [positions, d/2]: the rotations Block.attention_inputs applies, indexed by position_ids. GroupQueryAttention
    # also wants a row per key read (total_sequence_length), and a search's rows follow the text in the sequence:
    # rows past the window, never indexed, let a run read WINDOWS times the window's keys.
    cos, sin = (torch.cat((t, t.new_zeros(((WINDOWS - 1) * len(t), t.shape[1])))) for t in model.turns_real.unbind(-1))
    g.max_keys = len(cos)
    rotary = (g.weight("cos_cache", cos), g.weight("sin_cache", sin))
    x = g.op("Gather", [g.weight("embed_tokens", model.embed_tokens.weight), "input_ids"], "embed")[0]
    residual, update = x, None
    for i, block in enumerate(model.layers):
        gamma = g.weight(f"layers.{i}.input_norm", block.input_layernorm.weight)
        if update is None:
            h = g.op("SimplifiedLayerNormalization", [x, gamma], f"layers.{i}.input_norm", epsilon=eps, axis=-1,
                     stash_type=1)[0]
        else:
            h, _, _, residual = g.op("SkipSimplifiedLayerNormalization", [residual, update, gamma],
                                     f"layers.{i}.input_norm", outputs=4, domain=MS, epsilon=eps)
        qkv = g.matmul(h, block.qkv, f"layers.{i}.qkv")
        y = attention(g, qkv, i, block.n_head, block.n_kv_head, rotary, block.scale)
        update = g.matmul(y, block.o_proj, f"layers.{i}.o_proj")
        gamma = g.weight(f"layers.{i}.post_norm", block.post_attention_layernorm.weight)
        h, _, _, residual = g.op("SkipSimplifiedLayerNormalization", [residual, update, gamma],
                                 f"layers.{i}.post_norm", outputs=4, domain=MS, epsilon=eps)
        # one product for gate and up, split after: two took 15% longer a token (a fixed cost per product)
        gate, up = g.op("Split", [g.matmul(h, block.gate_up, f"layers.{i}.gate_up")], f"layers.{i}.split", outputs=2,
                        axis=-1, num_outputs=2)
        silu = g.op("Mul", [gate, g.op("Sigmoid", [gate], f"layers.{i}.sigmoid")[0]], f"layers.{i}.silu")[0]
        update = g.matmul(g.op("Mul", [silu, up], f"layers.{i}.swiglu")[0], block.down_proj, f"layers.{i}.down")
    return g.op("SkipSimplifiedLayerNormalization", [residual, update, g.weight("norm", model.norm.weight)], "norm",
                domain=MS, epsilon=eps)[0]


def gpt2(model: nn.Module, g: Graph) -> str:
    tokens = g.op("Gather", [g.weight("wte", model.wte.weight), "input_ids"], "wte")[0]
    places = g.op("Gather", [g.weight("wpe", model.wpe.weight), "position_ids"], "wpe")[0]
    residual = g.op("Add", [tokens, places], "embed")[0]
    update = bias = None  # the last matrix product's output, and its bias (added by the next SkipLayerNormalization)

    def norm(ln: nn.LayerNorm, name: str) -> str:
        nonlocal residual
        gamma, beta = g.weight(f"{name}.weight", ln.weight), g.weight(f"{name}.bias", ln.bias)
        if update is None:
            return g.op("LayerNormalization", [residual, gamma, beta], name, epsilon=ln.eps, axis=-1)[0]
        h, _, _, residual = g.op("SkipLayerNormalization", [residual, update, gamma, beta, bias], name, outputs=4,
                                 domain=MS, epsilon=ln.eps)
        return h

    for i, block in enumerate(model.h):  # products named by role, as Llama's: qkv, o_proj, up, down
        qkv = g.matmul(norm(block.ln_1, f"layers.{i}.ln_1"), block.c_attn, f"layers.{i}.qkv")
        y = attention(g, qkv, i, block.n_head, block.n_head, None, block.scale)
        update = g.matmul(y, block.attn_proj, f"layers.{i}.o_proj", bias=False)
        bias = g.weight(f"layers.{i}.o_proj.bias", block.attn_proj.bias)
        up = g.matmul(norm(block.ln_2, f"layers.{i}.ln_2"), block.c_fc, f"layers.{i}.up", bias=False)
        gelu = g.op("FastGelu", [up, g.weight(f"layers.{i}.up.bias", block.c_fc.bias)], f"layers.{i}.gelu",
                    domain=MS)[0]
        update = g.matmul(gelu, block.mlp_proj, f"layers.{i}.down", bias=False)
        bias = g.weight(f"layers.{i}.down.bias", block.mlp_proj.bias)
    return norm(model.ln_f, "ln_f")


ARCHITECTURES = {"GPT2": gpt2, "Llama": llama}


def shapes(model: nn.Module) -> tuple[int, int, int]:
    """Layers, key/value heads, head dim: the cache's [L, 2, B, H_kv, S, D]."""
    cache = model.new_cache(1, 1)
    L, _, _, H, _, D = cache.kv.shape
    return L, H, D


def to_onnx(model: nn.Module) -> onnx.ModelProto:
    """The fp32 graph of the interface onnx_run describes (keys and values float32 at every precision: GroupQuery-
    Attention on the CPU has no float16 cache for float32 queries, ONNX Runtime would cast every buffer each run)."""
    g = Graph()
    with torch.no_grad():
        normed = ARCHITECTURES[type(model).__name__](model, g)
        wanted = g.op("Gather", [normed, LOGITS_AT], "last", axis=1)[0]
        head = g.matmul(wanted, model.lm_head, "lm_head")
    g.nodes.append(helper.make_node("Identity", [head], ["logits"], name="logits"))
    L, H, D = shapes(model)
    buffer = ["batch", H, "capacity", D]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "T"]),
              helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "T"]),
              helper.make_tensor_value_info("attention_bias", TensorProto.FLOAT, ["batch", 1, "T", "keys"]),
              helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
              helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
              helper.make_tensor_value_info(LOGITS_AT, TensorProto.INT64, ["N"])]
    assert [i.name for i in inputs] == [*TOKENS, LOGITS_AT]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "N", model.config["vocab_size"]])]
    for layer in range(L):
        inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, buffer) for name in kv_names(layer, "past")]
        outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, buffer)
                    for name in kv_names(layer, "present")]
    graph = helper.make_graph(g.nodes, "autocomplete", inputs, outputs, g.weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
                              producer_name="autocomplete")
    if g.max_keys is not None:
        helper.set_model_props(proto, {MAX_KEYS: str(g.max_keys)})
    assert [o.name for o in proto.graph.output][:1] == list(OUTPUTS)
    return proto


def export(model: nn.Module, out_dir: Path, precision: str) -> Path:
    """out_dir/model.onnx: the model at this precision ("fp32", "int8" or "int4"), optimised, its weights beside it
    in out_dir/model.data (DATA): ONNX Runtime maps that file rather than parsing it, which halves opening a
    session. Written atomically (temporary names, renamed, the weights first) and readable by the owner only."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = out_dir / "model.onnx"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        graph = to_onnx(model)
        if precision != "fp32":
            graph = quantize(graph, bits=8 if precision == "int8" else 4)
        raw = Path(tmp) / "raw.onnx"
        onnx.save_model(graph, raw, save_as_external_data=True, location="raw.data")
        optimised = Path(tmp) / "model.onnx"
        optimise(raw, optimised)
        for name in (DATA, optimised.name):  # the graph, which names the weights' file, last
            os.chmod(Path(tmp) / name, 0o600)
            os.replace(Path(tmp) / name, out_dir / name)
    return target


def quantize(proto: onnx.ModelProto, bits: int) -> onnx.ModelProto:
    """Every MatMul on a weight (all of them: attention multiplies activations inside its own op) to MatMulNBits:
    blocks of BLOCK[bits] (FINER's in blocks of FINER_BLOCK), accuracy_level 4 (int8 products: the fast kernels);
    then each bias added after one given to it as its bias input."""
    import logging

    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    products = [n.name for n in proto.graph.node if n.op_type == "MatMul"]
    finer = [name for name in products if name.rsplit(".", 1)[-1] in FINER.get(bits, ())]
    for block, names in ((FINER_BLOCK, finer), (BLOCK[bits], [n for n in products if n not in finer])):
        if names:
            quantizer = MatMulNBitsQuantizer(proto, bits=bits, block_size=block, is_symmetric=SYMMETRIC,
                                             accuracy_level=4, nodes_to_exclude=[n for n in products if n not in names],
                                             op_types_to_quantize=("MatMul",))
            quantizer.process()
            proto = quantizer.model.model
    return _biases_inside(proto)


def _biases_inside(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Add(MatMulNBits(x), bias) as MatMulNBits(x, bias=bias): one node, no pass over its output."""
    graph = proto.graph
    weights = {w.name for w in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    dropped = set()
    for node in graph.node:
        if node.op_type != "MatMulNBits" or len(readers.get(node.output[0], [])) != 1:
            continue
        add = readers[node.output[0]][0]
        if add.op_type != "Add" or add.input[0] != node.output[0] or add.input[1] not in weights:
            continue
        inputs = list(node.input) + [""] * (6 - len(node.input))
        inputs[5] = add.input[1]
        del node.input[:]
        node.input.extend(inputs)
        node.output[0] = add.output[0]
        dropped.add(add.name)
    kept = [n for n in graph.node if n.name not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    return proto


def optimise(source: Path, target: Path) -> None:
    """ONNX Runtime's own graph optimisation, saved, with the weights in DATA beside the graph."""
    import onnxruntime as ort

    options = session_options(1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", DATA)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
