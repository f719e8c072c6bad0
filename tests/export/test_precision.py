"""fp16 range check and the static TensorRT check on small hand-built graphs (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_tl.bundle import Precision  # noqa: E402
from edge_tl.export.precision import FP16_MAX, check_fp16_ranges, convert_fp16  # noqa: E402
from edge_tl.export.trt_compat import check_tensorrt_compat  # noqa: E402
from edge_tl.runtime.backends.ort import ort_session  # noqa: E402


def _save(
    tmp_path: Path, nodes: list, initializers: list, name: str = "g.onnx", opset: int = 20
) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _overflowing_graph(tmp_path: Path) -> Path:
    """x * 1e5 (overflows fp16 for |x| > 0.65) → * 1e-5 → + 1: fine in fp32, inf in fp16."""
    nodes = [
        helper.make_node("Mul", ["x", "big"], ["scaled"], name="blow_up"),
        helper.make_node("Mul", ["scaled", "small"], ["back"], name="shrink"),
        helper.make_node("Add", ["back", "one"], ["y"], name="offset"),
    ]
    inits = [
        numpy_helper.from_array(np.array(1e5, np.float32), "big"),
        numpy_helper.from_array(np.array(1e-5, np.float32), "small"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    return _save(tmp_path, nodes, inits)


def test_range_check_finds_the_overflowing_tensor(tmp_path: Path) -> None:
    path = _overflowing_graph(tmp_path)
    feeds = [{"x": np.random.default_rng(0).uniform(-3, 3, (8, 4)).astype(np.float32)}]
    report = check_fp16_ranges(path, feeds)
    assert set(report.at_risk) == {"scaled"} and report.at_risk["scaled"] > FP16_MAX
    assert set(report.blocked_nodes) == {"blow_up", "shrink"}  # producer and consumer
    assert report.maxima["back"] < 4


def test_fp16_conversion_keeps_blocked_nodes_in_fp32(tmp_path: Path) -> None:
    path = _overflowing_graph(tmp_path)
    x = np.random.default_rng(0).uniform(-3, 3, (8, 4)).astype(np.float32)
    report = check_fp16_ranges(path, [{"x": x}])
    out = tmp_path / "fp16.onnx"
    convert_fp16(path, out, keep_io_types=True, blocked_nodes=report.blocked_nodes)
    model = onnx.load(str(out))
    types = {i.name: i.data_type for i in model.graph.initializer}
    assert types["big"] == TensorProto.FLOAT and types["small"] == TensorProto.FLOAT
    assert types["one"] == TensorProto.FLOAT16
    # simulate true fp16 arithmetic of the blocked part: it would overflow, so it must stay fp32
    with np.errstate(over="ignore"):
        assert np.isinf(x.astype(np.float16) * np.float16(1e5)).any()
    y = ort_session(str(out)).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, x + 1, rtol=1e-3, atol=1e-3)


def test_without_the_block_list_the_graph_goes_fp16(tmp_path: Path) -> None:
    path = _overflowing_graph(tmp_path)
    out = tmp_path / "naive.onnx"
    convert_fp16(path, out, keep_io_types=True)
    types = {i.name: i.data_type for i in onnx.load(str(out)).graph.initializer}
    assert types["big"] == TensorProto.FLOAT16  # what would overflow on a GPU


def _qdq_graph(tmp_path: Path, zero_point: int, bias_dtype=None) -> Path:  # type: ignore[no-untyped-def]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant_x"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dequant_x"),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(zero_point, np.int8), "zp"),
    ]
    if bias_dtype is not None:
        nodes.append(
            helper.make_node("DequantizeLinear", ["bias_q", "bias_s"], ["bias"], name="bias_dq")
        )
        inits += [
            numpy_helper.from_array(np.array([1, 2, 3, 4], bias_dtype), "bias_q"),
            numpy_helper.from_array(np.array(0.01, np.float32), "bias_s"),
        ]
    return _save(tmp_path, nodes, inits, f"qdq_{zero_point}.onnx")


def test_symmetric_qdq_passes(tmp_path: Path) -> None:
    assert check_tensorrt_compat(_qdq_graph(tmp_path, 0)) == []


def test_non_zero_zero_point_is_named(tmp_path: Path) -> None:
    findings = check_tensorrt_compat(_qdq_graph(tmp_path, 3))
    assert {(f.node, f.op_type) for f in findings} == {
        ("quant_x", "QuantizeLinear"),
        ("dequant_x", "DequantizeLinear"),
    }
    assert all("non-zero zero point" in f.problem for f in findings)


def test_int32_bias_dequantize_is_named(tmp_path: Path) -> None:
    findings = check_tensorrt_compat(_qdq_graph(tmp_path, 0, bias_dtype=np.int32))
    assert [f.node for f in findings] == ["bias_dq"] and "int32" in findings[0].problem


def test_unsupported_and_custom_ops_are_named(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Unique", ["x"], ["u"], name="dedupe"),
        helper.make_node("FastGelu", ["x"], ["y"], name="gelu", domain="com.microsoft"),
    ]
    findings = check_tensorrt_compat(_save(tmp_path, nodes, []))
    assert {f.node: f.op_type for f in findings} == {"dedupe": "Unique", "gelu": "FastGelu"}


def test_old_opset_is_reported(tmp_path: Path) -> None:
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"], name="r")], [], opset=7)
    assert [f.op_type for f in check_tensorrt_compat(path)] == ["opset"]


def test_uint8_input_must_go_through_a_cast(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["y"], name="to_nchw", perm=[0, 3, 1, 2])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["n", 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, ["n", 3, 8, 8])],
    )
    path = tmp_path / "u8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    assert [(f.node, f.op_type) for f in check_tensorrt_compat(path)] == [("to_nchw", "Transpose")]


def test_slower_than_fp32_warning_names_the_file_backend_and_the_cure() -> None:
    from edge_tl.export.pipeline import slower_than_fp32_warning

    assert slower_than_fp32_warning("model.int8.onnx", "openvino", Precision.INT8, 0.9, 1.0) is None
    assert slower_than_fp32_warning("model.int8.onnx", "openvino", Precision.INT8, 1.0, 1.0) is None
    on_openvino = slower_than_fp32_warning("model.int8.onnx", "openvino", Precision.INT8, 1.2, 1.0)
    assert on_openvino == (
        "model.int8.onnx is slower than fp32 on openvino, the CPU backend `auto` picks here: "
        "1.2 vs 1.0 ms at batch 1"
    )
    on_ort = slower_than_fp32_warning("model.int8.onnx", "onnxruntime", Precision.INT8, 3.0, 1.0)
    assert on_ort is not None and on_ort.endswith(
        "install edge-tl[openvino] for int8 that runs as int8"
    )
    fp16 = slower_than_fp32_warning("model.fp16.onnx", "onnxruntime", Precision.FP16, 3.0, 1.0)
    assert fp16 is not None and "install" not in fp16  # the hint is about int8's Q/DQ path only
