"""--precision int8: int8 weights for decoding one token at a time on the CPU.

Decoding is memory-bound (every weight is read once per token), so int8 weights read 4x fewer bytes than fp32.
What keeps the model faithful (measured on SmolLM2 in bench/run.py):
- one scale per output channel, not one per matrix;
- activations are quantized per token, and the few input features far larger than the rest (outliers, found
  in every layer of a real LLM) skip quantization and go through their fp32 weight columns, as in LLM.int8();
- more than one row at a time (the prompt, a batch of suggestions) runs on the fp32 weights: that is
  compute-bound, so exact costs little there, and a prompt's quantization error would stay in the KV cache.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from autocomplete.errors import UserError, first_line

OUTLIER = 6.0  # LLM.int8()'s threshold: features beyond it are computed in fp32


class Int8Linear(nn.Module):
    def __init__(self, linear: nn.Linear, outlier: float = OUTLIER, reduce_range: bool = True):
        super().__init__()
        weight = linear.weight.detach().float()
        # Kept as [in, out]: an outlier feature's weights are then one contiguous row to gather (a column of
        # [out, in] is strided: gathering them took a third of each token's time on SmolLM2, mostly in the
        # 49,152-row output head). quantize() points a tied embedding at this copy, so it costs no memory.
        self.weight_t = weight.t().contiguous()
        self.bias = None if linear.bias is None else linear.bias.detach().float()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.outlier = outlier
        self.reduce_range = reduce_range
        scale = (weight.abs().amax(dim=1).clamp(min=1e-12) / 127).double()
        zero = torch.zeros(self.out_features, dtype=torch.long)
        with warnings.catch_warnings():  # deprecated by torch in favour of torchao; quant.quantize says if it goes
            warnings.simplefilter("ignore", UserWarning)
            quantized = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
        self.packed = torch.ops.quantized.linear_prepack(quantized, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() != self.in_features:  # more than one row
            return F.linear(x, self.weight, self.bias)
        magnitude = x.abs()
        if magnitude.max().item() <= self.outlier:  # the usual case: no outlier features in this row
            return torch.ops.quantized.linear_dynamic(x, self.packed, self.reduce_range)
        rows = x.reshape(1, self.in_features)
        big = (magnitude.reshape(-1) > self.outlier).nonzero().reshape(-1)
        y = torch.ops.quantized.linear_dynamic(rows.index_fill(1, big, 0), self.packed, self.reduce_range)
        y = torch.addmm(y, rows.index_select(1, big), self.weight_t.index_select(0, big))
        return y.reshape(*x.shape[:-1], self.out_features)

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_t.t()  # [out, in], as nn.Linear's

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, outlier={self.outlier}"


def quantize(model: nn.Module) -> nn.Module:
    """Swap every nn.Linear of the model (the output head included) for an Int8Linear, in place."""
    if "fbgemm" not in torch.backends.quantized.supported_engines and \
            "x86" not in torch.backends.quantized.supported_engines:
        raise UserError("--precision int8 needs an x86 CPU (fbgemm); use --precision fp32 here")
    reduce_range = not _has_vnni()
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    try:
        with torch.no_grad():
            for module in list(model.modules()):
                for name, child in list(module.named_children()):
                    if type(child) is nn.Linear:
                        int8 = Int8Linear(child, reduce_range=reduce_range)
                        for embedding in embeddings:  # an output head tied to the input embedding
                            if embedding.weight.data_ptr() == child.weight.data_ptr():
                                # Looked up through the head's [in, out] copy: a token's row is read strided
                                # (a few hundred floats), and the [vocab, dim] original can go.
                                embedding.weight = nn.Parameter(int8.weight, requires_grad=False)
                        setattr(module, name, int8)
    except (RuntimeError, AttributeError) as error:  # the quantized ops are deprecated and may go
        raise UserError(f"--precision int8 is not available with torch {torch.__version__}: "
                        f"{first_line(error)}")
    return model


def _has_vnni() -> bool:
    """Without VNNI, fbgemm multiplies u8 x s8 pairs into a saturating int16, so activations must use 7 bits
    (reduce_range); with it (AVX512-VNNI, AVX-VNNI) products go straight to int32 and all 8 bits are usable."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_vnni", "avx_vnni"})
    except OSError:
        pass
    return False
