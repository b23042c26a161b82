"""Our compact torch models (autocomplete.engine.gpt2, autocomplete.engine.llama) exported to one ONNX graph per
precision, for ONNX Runtime on the CPU (autocomplete.engine.onnx_run runs it; its docstring gives the interface).

The graph runs the models' own Blocks (attention_inputs, then attention() below: layers.attend's arithmetic in the
form whose mask covers the shared keys too, then rest()): the torch modules stay the definition of the model. The
traced graph then has its shapes made constants where symbolic shape inference proves them (static_shapes: the
tracer computes every view()'s shape at run time, ~1,000 small nodes a call) and its stacks read without
re-splitting (unstacked). Then, for int8 and int4, ONNX Runtime's MatMulNBits quantizer on every weight matrix,
the output head included (blocks along the input, see BLOCK; accuracy_level 4: int8 activations, the fast
kernels), and ONNX Runtime's own graph optimisation, saved so a later load doesn't
repeat it.
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

from autocomplete.engine.onnx_run import OUTPUTS, inputs, session_options

PRECISIONS = ("fp32", "int8", "int4")
# Weights quantized in blocks along the input, each its own scale: 8-bit in blocks of 16 (half llama.cpp's Q8_0
# blocks: on SmolLM2 that is what makes it as faithful as Q8_0, top-1 96.2% and KL 0.0028 against 95.8% and 0.0044
# for blocks of 32), 4-bit in blocks of 32 (Q4_0's).
BLOCK = {8: 16, 4: 32}
OPSET = 18
SYMMETRIC = {8: True, 4: False}
DATA = "model.data"  # the weights, beside model.onnx


class Graph(nn.Module):
    """The interface onnx_run describes, around one of our models: each Block's own attention inputs and rest, the
    attention over shared + past + new keys in between (attention() below)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, positions, mask, *kv):
        model = self.model
        real = {"real": True} if hasattr(model, "turns_real") else {}
        x, turn = model.embed(input_ids, positions, **real)
        layers = len(model.blocks)
        shared, past = kv[: 2 * layers], kv[2 * layers:]  # each layer's key, then value
        # the key counts, read once from the inputs (the tracer then reuses them: one Shape each, not one a layer)
        sizes = [shared[0].shape[2], past[0].shape[2], input_ids.shape[1]]
        # [B, 1, groups * T, keys]: the keys a new token may not see, the same for each query head of a group and
        # each key/value head (made once, not once a layer)
        B, T, keys = mask.shape
        groups = model.n_head // model.n_kv_head
        hidden = (~mask).unsqueeze(1).unsqueeze(1).expand(B, 1, groups, T, keys).reshape(B, 1, groups * T, keys)
        present = []
        for layer, block in enumerate(model.blocks):
            q, new = block.attention_inputs(x, turn)
            keys = (shared[2 * layer], past[2 * layer], new[0])
            values = (shared[2 * layer + 1], past[2 * layer + 1], new[1])
            x = block.rest(x, attention(q, keys, values, hidden, sizes, block.scale))
            present.append(new)
        return model.head(x[:, -1]), torch.stack(present)


def attention(q: torch.Tensor, keys: tuple, values: tuple, hidden: torch.Tensor, sizes: list, scale: float | None
              ) -> torch.Tensor:
    """autocomplete.engine.layers.attend's arithmetic (its mask_covers_shared form) written for the export: q [B,
    heads, T, D] over the keys and values of the shared prefix ([1, H_kv, P, D], broadcast over B), the row's past and the
    new tokens ([B, H_kv, S or T, D]), each read where it is (scores for the three, concatenated: no copy of the
    keys and values into one tensor a layer); hidden [B, 1, groups * T, P + S + T]: the keys a new token may not
    see."""
    B, heads, T, D = q.shape
    kv_heads = keys[0].shape[1]
    groups = heads // kv_heads
    g = q.reshape(B, kv_heads, groups * T, D)  # query heads grouped by their key/value head (then by position)
    if scale != 1.0:  # (D a constant: read from the traced shape, it would be computed again every layer)
        g = g * (int(D) ** -0.5 if scale is None else scale)
    scores = torch.cat([g @ k.transpose(-1, -2) for k in keys], dim=-1).masked_fill(hidden, float("-inf"))
    weights = scores.softmax(dim=-1).split(sizes, dim=-1)
    y = weights[0] @ values[0] + weights[1] @ values[1] + weights[2] @ values[2]
    return y.reshape(B, heads, T, D)


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
    """out_dir/model.onnx: the model at this precision ("fp32", "int8" or "int4"), optimised, its weights beside it
    in out_dir/model.data (DATA): ONNX Runtime maps that file rather than parsing it, which halves opening a
    session (SmolLM2-135M int8: 0.33 s against 0.65 s in one protobuf). Written atomically (temporary names,
    renamed, the weights first) and readable by the owner only."""
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
        for name in (DATA, optimised.name):  # the graph, which names the weights' file, last
            os.chmod(Path(tmp) / name, 0o600)
            os.replace(Path(tmp) / name, out_dir / name)
    return target


def to_onnx(model: nn.Module) -> onnx.ModelProto:
    """torch.onnx's TorchScript exporter (the dynamo one gives the same graph but took 2-4 minutes on SmolLM2-135M,
    most of it decomposing and pattern-matching 30 layers; this one half a minute), every B, T, P, S dynamic; then
    MatMuls given their weights as [in, out] constants (what MatMulNBits needs)."""
    import io
    import warnings

    torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm, OPSET)
    names = inputs(len(model.blocks))
    axes = {"input_ids": {0: "B", 1: "T"}, "positions": {0: "B", 1: "T"}, "mask": {0: "B", 1: "T", 2: "keys"},
            **{name: {2: "P"} if name.startswith("shared.") else {0: "B", 2: "S"} for name in names[3:]},
            "logits": {0: "B"}, "present": {2: "B", 4: "T"}}
    input_ids, positions, mask, shared, past = sample_inputs(model, B=3, T=5, P=6, S=7)
    per_layer = [part for stacked in (shared, past) for layer in stacked for part in layer]  # key, value a layer
    buffer = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python asserts and sizes, and the deprecation
        torch.onnx.export(Graph(model).eval(), (input_ids, positions, mask, *per_layer), buffer,
                          input_names=names, output_names=list(OUTPUTS), dynamic_axes=axes, dynamo=False,
                          opset_version=OPSET, do_constant_folding=True)
    return unstacked(static_shapes(constant_weights(onnx.load_from_string(buffer.getvalue()))))


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


def static_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The shapes the tracer computes at run time (Shape -> Gather -> Unsqueeze -> Concat for every view() of a
    [B, T, ...] tensor, the chunk's Slice ends, the mask's Expand) given as constants wherever ONNX Runtime's
    symbolic shape inference (onnxruntime.tools.symbolic_shape_infer) proves them: a Reshape's target as ints, 0
    (ONNX: "this dimension of the input") and at most one -1; an Expand's as 1 where the input already has the
    dimension; a Slice's bounds as ints. What then computes nothing is dropped: each call runs ~1,000 fewer small
    nodes. What it can't prove stays as it was; so does everything if it had to guess two dims equal."""
    import logging

    import sympy
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    logging.getLogger("onnxruntime.tools.symbolic_shape_infer").setLevel(logging.ERROR)
    graph = proto.graph
    # inferred on a copy without the weights (only their shapes matter): a second or two, not a copy of them all
    light = onnx.ModelProto()
    light.CopyFrom(proto)
    del light.graph.initializer[:]
    mask = next(i for i in light.graph.input if i.name == "mask")
    mask.type.tensor_type.shape.dim[2].dim_param = _KEYS  # what the interface says it is
    for init in graph.initializer:
        if np.prod(init.dims) > 64:
            light.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        else:
            light.graph.initializer.append(init)
    inference = SymbolicShapeInference(int_max=2**31 - 1, auto_merge=False, guess_output_rank=False, verbose=0)
    inference._preprocess(light)
    inference.symbolic_dims_ = _Dims(inference.symbolic_dims_)
    done = False
    try:
        while inference.run_:
            done = inference._infer_impl()
    except Exception:  # a graph it can't follow: left as it is
        return proto
    if not done or inference.suggested_merge_:  # dims it had to guess equal: nothing it proved is trusted
        return proto
    data = inference.sympy_data_
    inits = {i.name for i in graph.initializer}

    def known(name: str):
        value = data.get(name)
        return list(value) if isinstance(value, (list, tuple, np.ndarray)) else None

    def shape_of(node: onnx.NodeProto):
        try:
            return inference._get_sympy_shape(node, 0)
        except Exception:
            return None

    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) or (isinstance(v, sympy.Basic) and v.is_Integer)

    def same(a, b) -> bool:
        return is_int(a) and is_int(b) and int(a) == int(b) or \
            isinstance(a, sympy.Basic) and isinstance(b, sympy.Basic) and sympy.simplify(a - b) == 0

    def empty(shape) -> bool:
        """Whether a tensor of this shape can have no elements: the shared and past keys can be none."""
        least = {symbol: 0 if symbol.name in ("P", "S") else 1 for d in shape if isinstance(d, sympy.Basic)
                 for symbol in d.free_symbols}
        return any(int(sympy.sympify(d).subs(least)) == 0 for d in shape)

    def constant(node: onnx.NodeProto, index: int, values: list[int]) -> None:
        name = f"{node.output[0]}.static{index}"
        graph.initializer.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        node.input[index] = name

    for node in graph.node:
        if node.op_type == "Reshape" and not any(a.name == "allowzero" and a.i for a in node.attribute):
            target, source = known(node.input[1]), shape_of(node)
            if target is None or source is None or node.input[1] in inits:
                continue
            new = [int(v) if is_int(v) else 0 if i < len(source) and same(v, source[i]) else None
                   for i, v in enumerate(target)]
            # -1 only where the input can't be empty (P = S = 0): ONNX can't infer it from a product of zero
            if new.count(None) + new.count(-1) == 0 or new.count(None) + new.count(-1) == 1 and not empty(source):
                constant(node, 1, [-1 if v is None else v for v in new])
        elif node.op_type == "Expand":
            target, source = known(node.input[1]), shape_of(node)
            if target is None or source is None:
                continue
            offset = len(target) - len(source)
            new = [1 if i >= offset and same(v, source[i - offset]) else int(v) if is_int(v) else None
                   for i, v in enumerate(target)]
            if None not in new:
                constant(node, 1, new)
        elif node.op_type == "Slice":
            for index in (1, 2):
                values = known(node.input[index])
                if values is not None and all(is_int(v) for v in values) and node.input[index] not in inits:
                    constant(node, index, [int(v) for v in values])
    _drop_unused(proto)
    return proto


def unstacked(proto: onnx.ModelProto) -> onnx.ModelProto:
    """x[i] of x = torch.stack(parts) (Gather(Concat(Unsqueeze(part)...), i), as each layer's attention reads its new
    keys and values from the Block's stack of them) read as parts[i] itself: no Split and copy of what was just
    stacked. The stack stays for what else reads it (the present output)."""
    graph = proto.graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    producers = {o: n for n in graph.node for o in n.output}
    attr = lambda node, name, default: next(  # noqa: E731
        (helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)
    renamed: dict[str, str] = {}
    for node in graph.node:
        source = producers.get(node.input[0]) if node.op_type == "Gather" else None
        index = values.get(node.input[1]) if source is not None else None
        if index is None or index.ndim != 0 or attr(node, "axis", 0) != 0 or source.op_type != "Concat" \
                or attr(source, "axis", None) != 0:
            continue
        parts = [producers.get(name) for name in source.input]
        if all(p is not None and p.op_type == "Unsqueeze" and len(p.input) == 2 and p.input[1] in values
               and values[p.input[1]].tolist() == [0] for p in parts):
            renamed[node.output[0]] = parts[int(index)].input[0]
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renamed and name not in outputs:
                node.input[i] = renamed[name]
    _drop_unused(proto)
    return proto


_KEYS = "P + S + T"


class _Dims(dict):
    """The symbolic shape inference's table of dims, told that the mask's last one is P + S + T (the shared, past
    and new keys): given as one more input symbol, it would see no relation between them."""

    def __setitem__(self, name, value):
        if name == _KEYS:
            import sympy

            P, S, T = (sympy.Symbol(s, integer=True, positive=True) for s in "PST")  # as it makes input symbols
            value = P + S + T
        super().__setitem__(name, value)


def quantize(proto: onnx.ModelProto, bits: int) -> onnx.ModelProto:
    """Every MatMul on a constant weight (all of them: the attention's MatMuls multiply activations) to
    MatMulNBits: blocks of BLOCK[bits], accuracy_level 4 (int8 products: 8-bit has no fast kernel otherwise)."""
    import logging

    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(proto, bits=bits, block_size=BLOCK[bits], is_symmetric=SYMMETRIC[bits], accuracy_level=4,
                                     op_types_to_quantize=("MatMul",))
    quantizer.process()
    return quantizer.model.model


def optimise(source: Path, target: Path) -> None:
    """ONNX Runtime's own graph optimisation (all levels: fusions, constant folding, its CPU layouts), saved, with
    the weights in DATA beside the graph."""
    import onnxruntime as ort

    options = session_options(1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", DATA)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
