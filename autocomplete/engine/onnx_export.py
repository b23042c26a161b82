"""Our compact torch models (autocomplete.engine.gpt2, autocomplete.engine.llama) exported to one ONNX graph per
precision, for ONNX Runtime on the CPU (autocomplete.engine.onnx_run runs it; its docstring gives the interface).

The graph runs the models' own Blocks (attention_inputs, then attend() in the form whose mask covers the shared
keys too, then rest()): the torch modules stay the definition of the model. Then, for int8 and int4, ONNX
Runtime's MatMulNBits quantizer on every weight matrix, the output head included (blocks of 32 along the input,
symmetric, as llama.cpp's Q8_0 / Q4_0; accuracy_level 4: int8 activations, the fast kernels), and ONNX Runtime's
own graph optimisation, saved so a later load doesn't repeat it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from autocomplete.engine.gpt2 import attend
from autocomplete.engine.onnx_run import INPUTS, OUTPUTS

PRECISIONS = ("fp32", "int8", "int4")
BLOCK = 32  # weights quantized in blocks of 32 along the input, like llama.cpp's Q8_0 and Q4_0
OPSET = 18
SYMMETRIC = {8: True, 4: False}


class Graph(nn.Module):
    """The interface onnx_run describes, around one of our models: each Block's own attention inputs and rest, the
    attention over shared + past + new keys in between."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, positions, mask, shared, past):
        model = self.model
        real = {"real": True} if hasattr(model, "turns_real") else {}
        x, turn = model.embed(input_ids, positions, **real)
        mask = mask.unsqueeze(1)  # [B, 1, T, P + S + T]: the same for every head
        present = []
        for layer, block in enumerate(model.blocks):
            q, new = block.attention_inputs(x, turn)
            keys = torch.cat((past[layer, 0], new[0]), dim=2)
            values = torch.cat((past[layer, 1], new[1]), dim=2)
            y = attend(q, keys, values, mask, shared[layer], scale=block.scale, mask_covers_shared=True)
            x = block.rest(x, y)
            present.append(new)
        return model.head(x[:, -1]), torch.stack(present)


def shapes(model: nn.Module) -> tuple[int, int, int]:
    """Layers, key/value heads, head dim: the cache's [L, 2, B, H_kv, S, D]."""
    cache = model.new_cache(1, 1)
    L, _, _, H, _, D = cache.kv.shape
    return L, H, D


def sample_inputs(model: nn.Module, B: int, T: int, P: int, S: int, seed: int = 0):
    """Inputs of the graph's interface (random keys and values, every key visible; the export traces with these)."""
    L, H, D = shapes(model)
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, model.config["vocab_size"], (B, T), generator=g), P + S + torch.arange(T).repeat(B, 1),
            torch.ones(B, T, P + S + T, dtype=torch.bool), torch.randn(L, 2, 1, H, P, D, generator=g),
            torch.randn(L, 2, B, H, S, D, generator=g))


def export(model: nn.Module, out_dir: Path, precision: str) -> Path:
    """out_dir/model.onnx: the model at this precision ("fp32", "int8" or "int4"), optimised, written atomically
    (a temporary name, then renamed) and readable by the owner only. One file: these models are far below 2 GB."""
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
        onnx.save_model(graph, raw)
        optimised = Path(tmp) / "model.onnx"
        optimise(raw, optimised)
        os.chmod(optimised, 0o600)
        os.replace(optimised, target)
    return target


def to_onnx(model: nn.Module) -> onnx.ModelProto:
    """torch.onnx's TorchScript exporter (the dynamo one gives the same graph but took 2-4 minutes on SmolLM2-135M,
    most of it decomposing and pattern-matching 30 layers; this one half a minute), every B, T, P, S dynamic; then
    MatMuls given their weights as [in, out] constants (what MatMulNBits needs)."""
    import io
    import warnings

    torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm, OPSET)
    axes = {"input_ids": {0: "B", 1: "T"}, "positions": {0: "B", 1: "T"}, "mask": {0: "B", 1: "T", 2: "keys"},
            "shared": {4: "P"}, "past": {2: "B", 4: "S"}, "logits": {0: "B"}, "present": {2: "B", 4: "T"}}
    buffer = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python asserts and sizes, and the deprecation
        torch.onnx.export(Graph(model).eval(), sample_inputs(model, B=3, T=5, P=6, S=7), buffer,
                          input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_axes=axes, dynamo=False,
                          opset_version=OPSET, do_constant_folding=True)
    return constant_weights(onnx.load_from_string(buffer.getvalue()))


def _rms_norm(g, x, shape, weight, eps):
    """aten::rms_norm, which the TorchScript exporter lacks, in the form ONNX Runtime fuses into its
    SimplifiedLayerNormalization: x / sqrt(mean(x²) + eps) * weight, over the last dimension."""
    from torch.onnx import symbolic_helper

    eps = symbolic_helper._maybe_get_const(eps, "f")
    eps = torch.finfo(torch.float32).eps if eps is None or not isinstance(eps, float) else eps
    const = lambda value: g.op("Constant", value_t=torch.tensor(value))  # noqa: E731
    mean = g.op("ReduceMean", g.op("Pow", x, const(2.0)), const([-1]), keepdims_i=1)
    return g.op("Mul", g.op("Div", x, g.op("Sqrt", g.op("Add", mean, const(eps)))), weight)


def constant_weights(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Every MatMul whose second input is Transpose(initializer) (or a Gemm(transB=1) on one, as an nn.Linear of a
    2-D input exports) rewritten as MatMul(x, W^T as its own initializer): the head tied to the embedding then keeps
    the [vocab, dim] table for the Gather and gets a [dim, vocab] copy."""
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    transposed: dict[str, str] = {}

    def transposed_initializer(name: str) -> str:
        if name not in transposed:
            weight = numpy_helper.to_array(inits[name])
            new = numpy_helper.from_array(np.ascontiguousarray(weight.T), f"{name}.T")
            graph.initializer.append(new)
            transposed[name] = new.name
        return transposed[name]

    nodes = []
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in producers:
            source = producers[node.input[1]]
            perm = next((list(a.ints) for a in source.attribute if a.name == "perm"), None)
            if source.op_type == "Transpose" and source.input[0] in inits and perm in (None, [1, 0]):
                node.input[1] = transposed_initializer(source.input[0])
        elif node.op_type == "Gemm" and node.input[1] in inits:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transB") == 1 and not attrs.get("transA") and attrs.get("alpha", 1.0) == 1.0 \
                    and len(node.input) == 2:
                nodes.append(helper.make_node("MatMul", [node.input[0], transposed_initializer(node.input[1])],
                                              list(node.output), name=node.name))
                continue
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(proto)
    return proto


def _drop_unused(proto: onnx.ModelProto) -> None:
    """Nodes whose outputs nothing reads (the Transposes replaced above), then initializers nothing reads."""
    graph = proto.graph
    while True:
        read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        keep = [n for n in graph.node if any(o in read for o in n.output)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    unused = [i for i in graph.initializer if i.name not in read]
    for init in unused:
        graph.initializer.remove(init)


def quantize(proto: onnx.ModelProto, bits: int) -> onnx.ModelProto:
    """Every MatMul on a constant weight (all of them: the attention's MatMuls multiply activations) to
    MatMulNBits: blocks of 32, symmetric, accuracy_level 4 (int8 products: 8-bit has no fast kernel otherwise)."""
    import logging

    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(proto, bits=bits, block_size=BLOCK, is_symmetric=SYMMETRIC[bits], accuracy_level=4,
                                     op_types_to_quantize=("MatMul",))
    quantizer.process()
    return quantizer.model.model


def optimise(source: Path, target: Path) -> None:
    """ONNX Runtime's own graph optimisation (all levels: fusions, constant folding, its CPU layouts), saved."""
    from autocomplete.engine.onnx_run import session_options
    import onnxruntime as ort

    options = session_options(1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
