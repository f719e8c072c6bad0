"""Static TensorRT-compatibility check of an ONNX graph, without TensorRT installed.

Catches what TensorRT's ONNX parser (onnx-tensorrt) is documented to reject, and names the
node: opsets outside its range, custom-domain and unsupported operators, Q/DQ with non-zero or
non-int8 zero points, and int32 (bias) DequantizeLinear. A real parse is done by
`edge-tl build` wherever a TensorRT builder is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_tl._deps import require
from edge_tl.errors import ExportError

__all__ = ["Finding", "check_tensorrt_compat", "require_tensorrt_compat", "OPSET_RANGE"]

# TensorRT 10.0 documents opsets 9..20; later 10.x parsers accept newer opsets.
OPSET_RANGE = (9, 22)

# Operators onnx-tensorrt documents as unsupported (docs/operators.md), still absent in 10.x.
UNSUPPORTED_OPS = frozenset(
    {
        "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear",
        "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
        "SequenceLength", "SplitToSequence", "ConcatFromSequence", "StringNormalizer",
        "TfIdfVectorizer", "Unique", "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss",
        "MaxRoiPool", "Multinomial", "Det",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    node: str
    op_type: str
    problem: str

    def __str__(self) -> str:
        return f"node '{self.node}' ({self.op_type}): {self.problem}"


def check_tensorrt_compat(path: Path) -> list[Finding]:
    onnx = require("onnx", "train")
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    findings: list[Finding] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        findings.append(
            Finding("(model)", "opset", f"default-domain opset {opset} is outside {OPSET_RANGE}")
        )
    constants: dict[str, Any] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    types = _value_types(onnx, model)
    uint8_inputs = {
        i.name for i in graph.input if i.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    }

    for node in graph.node:
        name = node.name or node.output[0]
        if node.domain not in ("", "ai.onnx"):
            findings.append(
                Finding(
                    name,
                    node.op_type,
                    f"custom-domain operator ({node.domain}) has no TensorRT importer",
                )
            )
            continue
        if node.op_type not in ("Cast", "Shape", "Size") and uint8_inputs & set(node.input):
            findings.append(
                Finding(
                    name, node.op_type, "takes a uint8 graph input; TensorRT needs a Cast first"
                )
            )
        if node.op_type in UNSUPPORTED_OPS:
            findings.append(
                Finding(name, node.op_type, "operator not supported by TensorRT's ONNX parser")
            )
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            findings += _check_qdq(node, name, constants, types, onnx)
    return findings


def require_tensorrt_compat(path: Path) -> None:
    findings = check_tensorrt_compat(path)
    if findings:
        listed = "; ".join(str(f) for f in findings[:5])
        more = f" (and {len(findings) - 5} more)" if len(findings) > 5 else ""
        raise ExportError(f"{path.name}: TensorRT would reject it: {listed}{more}")


def _check_qdq(
    node: Any, name: str, constants: dict[str, Any], types: dict[str, int], onnx: Any
) -> list[Finding]:
    findings = []
    scale = constants.get(node.input[1]) if len(node.input) > 1 else None
    if scale is not None and np.any(np.asarray(scale) <= 0):
        findings.append(Finding(name, node.op_type, "scale must be > 0"))
    if len(node.input) > 2 and node.input[2]:
        zero_point = constants.get(node.input[2])
        if zero_point is None:
            findings.append(Finding(name, node.op_type, "zero point must be a constant"))
        else:
            if np.any(np.asarray(zero_point).astype(np.float64) != 0):
                findings.append(
                    Finding(
                        name,
                        node.op_type,
                        "non-zero zero point (TensorRT quantization is symmetric)",
                    )
                )
            if zero_point.dtype not in (np.int8,) and "float8" not in str(zero_point.dtype):
                findings.append(
                    Finding(
                        name,
                        node.op_type,
                        f"zero point type {zero_point.dtype}; TensorRT needs int8",
                    )
                )
    if node.op_type == "DequantizeLinear":
        source = constants.get(node.input[0])
        dtype = source.dtype if source is not None else None
        elem = types.get(node.input[0])
        if dtype == np.int32 or elem == onnx.TensorProto.INT32:
            findings.append(
                Finding(
                    name,
                    node.op_type,
                    "int32 input (a quantized bias); TensorRT rejects it: keep bias in float",
                )
            )
    return findings


def _value_types(onnx: Any, model: Any) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # an unusual graph: the other checks still apply
        inferred = model
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {v.name: v.type.tensor_type.elem_type for v in values}
