"""Precision-explicit graphs from fp32.onnx: fp16 (with an activation range check) and INT8
Q/DQ in the format TensorRT accepts (symmetric int8, zero points 0, bias not quantized).

Path to path, like ONNX Runtime's `quantize_static`. Needs onnx and onnxruntime, not torch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._deps import require
from edge_tl.errors import ExportError
from edge_tl.progress import track
from edge_tl.runtime.backends.ort import ort_session

__all__ = [
    "FP16_MAX",
    "CalibrationMethod",
    "RangeReport",
    "activation_ranges",
    "check_fp16_ranges",
    "convert_fp16",
    "quantize_int8",
]

log = logging.getLogger(__name__)

FP16_MAX = 65504.0
CALIBRATION_FLUSH_BATCHES = 4
# Calibration images never cover the worst case: a tensor is "at risk" above this share of FP16_MAX.
FP16_HEADROOM = 0.5

Feed = dict[str, np.ndarray]


class CalibrationMethod(str, Enum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


@dataclass(frozen=True)
class RangeReport:
    """Max |activation| per tensor of the fp32 graph over the calibration images."""

    maxima: dict[str, float]
    limit: float
    at_risk: dict[str, float]  # tensor → max |value|, above `limit`
    blocked_nodes: list[str]  # kept in fp32: producers and consumers of at-risk tensors

    def as_dict(self) -> dict[str, Any]:
        largest = sorted(self.maxima.items(), key=lambda kv: -kv[1])[:5]
        return {
            "limit": self.limit,
            "tensors_checked": len(self.maxima),
            "largest": {name: round(value, 3) for name, value in largest},
            "at_risk": {name: round(value, 3) for name, value in self.at_risk.items()},
            "kept_fp32_nodes": self.blocked_nodes,
        }


def activation_ranges(fp32_path: Path, feeds: Iterable[Feed]) -> dict[str, float]:
    """Run the fp32 graph with every float intermediate exposed as an output; max |x| each."""
    onnx = require("onnx", "train")
    model = onnx.load(str(fp32_path))
    inferred = onnx.shape_inference.infer_shapes(model)
    float_type = onnx.TensorProto.FLOAT
    float_values = {
        vi.name
        for vi in [*inferred.graph.value_info, *inferred.graph.output]
        if vi.type.tensor_type.elem_type == float_type
    }
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name in float_values and name not in outputs:
                model.graph.output.append(
                    onnx.helper.make_tensor_value_info(name, float_type, None)
                )
                outputs.add(name)
    session = ort_session(model.SerializeToString(), optimize=False)
    names = [o.name for o in session.get_outputs()]
    maxima = dict.fromkeys(names, 0.0)
    for feed in track(list(feeds), "fp16 range check"):
        for name, value in zip(names, session.run(names, feed), strict=True):
            if value.size:
                maxima[name] = max(maxima[name], float(np.abs(value).max()))
    return maxima


def check_fp16_ranges(
    fp32_path: Path, feeds: Iterable[Feed], headroom: float = FP16_HEADROOM
) -> RangeReport:
    """Find tensors whose fp32 range would overflow (or nearly) in fp16, and the nodes to keep
    in fp32 so that no fp16 value ever holds them. CPU providers compute fp16 graphs in fp32,
    so this is the only place such an overflow can be seen before a GPU does."""
    onnx = require("onnx", "train")
    maxima = activation_ranges(fp32_path, feeds)
    limit = FP16_MAX * headroom
    at_risk = {name: value for name, value in maxima.items() if value > limit}
    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    blocked = [
        node.name
        for node in graph.node
        if any(name in at_risk for name in [*node.output, *node.input])
    ]
    for name, value in at_risk.items():
        log.warning("fp16 range: tensor %s reaches %.4g (> %.4g); kept in fp32", name, value, limit)
    return RangeReport(maxima=maxima, limit=limit, at_risk=at_risk, blocked_nodes=blocked)


def convert_fp16(
    fp32_path: Path,
    out_path: Path,
    keep_io_types: bool = True,
    blocked_nodes: list[str] | None = None,
) -> None:
    """fp16 weights and compute; `blocked_nodes` stay fp32 behind Casts."""
    onnx = require("onnx", "train")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    converted = convert_float_to_float16(
        model,
        max_finite_val=FP16_MAX,  # onnxconverter-common's default 1e4 would clamp real weights
        keep_io_types=keep_io_types,
        node_block_list=blocked_nodes or None,
    )
    _check_and_save(_remove_fp16_round_trips(converted), out_path)


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    feeds: Iterable[Feed],
    method: CalibrationMethod = CalibrationMethod.PERCENTILE,
    percentile: float = 99.999,
    exclude_nodes: list[str] | None = None,
    rest_fp16: bool = False,
) -> None:
    """Static post-training quantization with ModelOpt's TensorRT settings (ORT quantize_static):
    Q/DQ, int8 symmetric activations and per-channel weights, zero points 0, bias left fp32,
    only Conv/Gemm/MatMul quantized. With `rest_fp16`, the rest is cast to fp16 (opset >= 19)."""
    onnx = require("onnx", "train")
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        CalibrationMethod.MINMAX: q.CalibrationMethod.MinMax,
        CalibrationMethod.ENTROPY: q.CalibrationMethod.Entropy,
        CalibrationMethod.PERCENTILE: q.CalibrationMethod.Percentile,
    }
    all_op_types = sorted({n.op_type for n in onnx.load(str(fp32_path)).graph.node})
    extra_options: dict[str, Any] = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,  # TensorRT rejects an int32 bias DequantizeLinear
        "AddQDQPairToWeight": True,
        "OpTypesToExcludeOutputQuantization": all_op_types,
        "DedicatedQDQPair": False,
        "ForceQuantizeNoInputCheck": True,
        "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
        "QDQDisableWeightAdjustForInt32Bias": True,
    }
    if method == CalibrationMethod.PERCENTILE:
        extra_options["CalibPercentile"] = percentile
    # ORT's calibrators keep every intermediate tensor of every batch until the end: 256 images
    # of a 224px Lite0 peaked at 23.4 GB RSS and 512 were OOM-killed on 24 GB. With a strided
    # reader, histograms/ranges are folded in every few batches (CalibMaxIntermediateOutputs
    # is ignored by the histogram calibrators).
    reader = _Reader(feeds)
    extra_options["CalibStridedMinMax"] = _stride(len(reader), CALIBRATION_FLUSH_BATCHES)
    with tempfile.TemporaryDirectory(prefix="edge-tl-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "quantized.onnx"
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # ORT prints calibration chatter
                quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
                q.quantize_static(
                    str(prepared),
                    str(quantized),
                    calibration_data_reader=reader,
                    quant_format=q.QuantFormat.QDQ,
                    op_types_to_quantize=["Conv", "Gemm", "MatMul"],
                    per_channel=True,
                    activation_type=q.QuantType.QInt8,
                    weight_type=q.QuantType.QInt8,
                    nodes_to_exclude=exclude_nodes or [],
                    calibrate_method=methods[method],
                    extra_options=extra_options,
                )
        except Exception as exc:  # ORT raises plain Exceptions/ValueErrors from deep inside
            raise ExportError(f"{fp32_path.name}: INT8 quantization failed: {exc}") from exc
        model = onnx.load(str(quantized))
        if rest_fp16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = convert_float_to_float16(model, max_finite_val=FP16_MAX, keep_io_types=True)
        _check_and_save(model, out_path)


class _Reader:
    """Adapts any iterable of {input_name: array} to ORT's CalibrationDataReader protocol,
    including the `set_range` that ORT's strided calibration calls between chunks."""

    def __init__(self, feeds: Iterable[Feed]) -> None:
        self._all = list(feeds)
        self._feeds: Iterator[Feed] = iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def set_range(self, start_index: int, end_index: int) -> None:
        log.debug("calibration batches %d-%d", start_index, end_index)
        self._feeds = iter(self._all[start_index:end_index])

    def get_next(self) -> Feed | None:
        return next(self._feeds, None)


def _stride(total: int, most: int) -> int:
    """Largest chunk size <= `most` that divides `total` (ORT requires a divisor)."""
    return next(size for size in range(min(most, total), 0, -1) if total % size == 0)


def _remove_fp16_round_trips(model: Any) -> Any:
    """Bypass Cast(fp32→fp16)→Cast(→fp32) pairs. The converter casts every blocked node's output
    to fp16 and back, even between two blocked nodes, so the value it was told to keep in fp32
    passes through fp16 and overflows all the same (shown in tests/export/test_precision.py)."""
    onnx = require("onnx", "train")
    float16, float32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    float_values = {i.name for i in graph.input if i.type.tensor_type.elem_type == float32}
    float_values |= {v.name for v in graph.value_info if v.type.tensor_type.elem_type == float32}
    float_values |= {
        n.output[0] for n in graph.node if n.op_type == "Cast" and _cast_to(n) == float32
    }

    renamed: dict[str, str] = {}
    removed = set()
    for node in graph.node:
        if node.op_type != "Cast" or _cast_to(node) != float32:
            continue
        source = producers.get(node.input[0])
        if (
            source is not None
            and source.op_type == "Cast"
            and _cast_to(source) == float16
            and source.input[0] in float_values
        ):
            renamed[node.output[0]] = source.input[0]
            removed.add(id(node))
    graph_outputs = {o.name for o in graph.output}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renamed and renamed[name] not in graph_outputs:
                node.input[i] = renamed[name]
    kept = [n for n in graph.node if id(n) not in removed or n.output[0] in graph_outputs]
    consumed = {name for n in kept for name in n.input} | graph_outputs
    kept = [n for n in kept if not (n.op_type == "Cast" and n.output[0] not in consumed)]
    del graph.node[:]
    graph.node.extend(kept)
    produced = {name for n in kept for name in n.output}
    stale = [v for v in graph.value_info if v.name not in produced]
    for value in stale:
        graph.value_info.remove(value)
    return model


def _cast_to(node: Any) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _topologically_sorted(model: Any) -> Any:
    """Reorder nodes so each comes after its producers (the fp16 converter appends the Casts it
    inserts for kept-fp32 I/O at the end of the list, which onnx.checker rejects)."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        progressed = False
        remaining = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
                progressed = True
            else:
                remaining.append(node)
        if not progressed:
            raise ExportError(
                f"graph has a cycle or a dangling input near node '{remaining[0].name}'"
            )
        pending = remaining
    del graph.node[:]
    graph.node.extend(ordered)
    return model


def _check_and_save(model: Any, out_path: Path) -> None:
    onnx = require("onnx", "train")
    model = _topologically_sorted(model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(
            f"{out_path.name}: onnx.checker rejects the converted graph: {exc}"
        ) from exc
    onnx.save(model, str(out_path))
