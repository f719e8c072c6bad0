"""Exported graphs of a real (tiny) Lite0 bundle: parity, INT8 format, accuracy table, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_tl.bundle import ArtifactKind, Bundle, Precision
from edge_tl.errors import BundleError, ExportError
from edge_tl.export import ExportOptions, export_bundle
from tests.conftest import run_cli, snapshot

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

pytestmark = pytest.mark.slow


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_every_precision_is_recorded_with_accuracy(exported_bundle: Path) -> None:
    bundle = Bundle.load(exported_bundle)
    for precision in Precision:
        artifact = bundle.find(ArtifactKind.ONNX, precision)
        assert artifact is not None, precision
        assert artifact.details["tensorrt_static_check"] == "passed"
        metrics = bundle.manifest.metrics[precision.value]
        assert metrics.split == "val" and metrics.num_images == 9
        assert 0.0 <= metrics.top1 <= 1.0 and metrics.cpu_latency_ms_p50_batch1 > 0
    assert "reference Q/DQ" in bundle.manifest.metrics["int8"].measured_on
    assert bundle.manifest.metrics["fp16"].agreement_fp32 == 1.0
    parity = bundle.find(ArtifactKind.ONNX, Precision.FP32).details["parity_vs_torch"]  # type: ignore[union-attr]
    assert parity["inputs"] == "validation split" and parity["max_abs_logit_diff"] < 1e-3
    assert parity["top1_agreement"] == 1.0


def test_fp32_graph_is_self_contained_with_metadata(exported_bundle: Path) -> None:
    model = onnx.load(str(exported_bundle / "fp32.onnx"))
    onnx.checker.check_model(model)
    assert not list(exported_bundle.glob("*.data"))  # no external weights file
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["edge_tl.labels"]) == ["checker", "disc", "stripes"]
    assert json.loads(meta["edge_tl.input"])["height"] == 64
    assert model.opset_import[0].version >= 19
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param  # dynamic batch


def test_int8_graph_is_in_tensorrt_format(exported_bundle: Path) -> None:
    model = onnx.load(str(exported_bundle / "int8.onnx"))
    weights = _initializers(model)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 50
    for node in qdq:
        assert len(node.input) == 3, node.name
        zero_point = weights[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
        assert (weights[node.input[1]] > 0).all()
    # no DequantizeLinear of a stored int32 tensor (a quantized bias)
    assert not [
        n
        for n in qdq
        if n.op_type == "DequantizeLinear" and weights.get(n.input[0], np.int8(0)).dtype == np.int32
    ]
    # weights carry a Q/DQ pair (TensorRT folds it) with one scale per output channel
    quantized_weights = [n for n in qdq if n.op_type == "QuantizeLinear" and n.input[0] in weights]
    per_channel = [
        n
        for n in quantized_weights
        if weights[n.input[1]].ndim == 1 and weights[n.input[1]].size > 1
    ]
    assert len(per_channel) >= 40
    # auto exclusion: the first Conv reads the graph input directly, not a DequantizeLinear
    producers = {o: n for n in model.graph.node for o in n.output}
    first_conv = next(n for n in model.graph.node if n.op_type == "Conv")
    data_input = first_conv.input[0]
    while data_input in producers and producers[data_input].op_type == "Cast":
        data_input = producers[data_input].input[0]
    assert data_input == model.graph.input[0].name


def test_fp16_graph_holds_fp16_weights(exported_bundle: Path) -> None:
    model = onnx.load(str(exported_bundle / "fp16.onnx"))
    conv_weights = [
        i
        for i in model.graph.initializer
        if i.data_type == onnx.TensorProto.FLOAT16 and len(i.dims) == 4
    ]
    assert len(conv_weights) >= 40
    assert (
        model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    )  # keep_io_types


def test_too_few_calibration_images_leaves_bundle_untouched(
    exported_bundle: Path, tmp_path: Path
) -> None:
    bundle_dir = tmp_path / "b"
    shutil.copytree(exported_bundle, bundle_dir)
    before = snapshot(bundle_dir)
    result = run_cli("export", str(bundle_dir), "--precision", "int8", "--calib-images", "4")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("edge-tl: error: --calib-images 4: too few")
    assert snapshot(bundle_dir) == before
    # more than there are: all of them, with a warning (issue 16: small datasets export)
    result = run_cli("export", str(bundle_dir), "--precision", "int8", "--calib-images", "500")
    assert result.returncode == 0, result.stderr
    assert "INT8 calibration on all 27 training images (asked for 500" in result.stderr
    details = Bundle.load(bundle_dir).find(ArtifactKind.ONNX, Precision.INT8).details  # type: ignore[union-attr]
    assert details["calibration"]["images"] == 27


def test_unknown_precision_is_one_line(exported_bundle: Path) -> None:
    result = run_cli("export", str(exported_bundle), "--precision", "fp8")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "edge-tl: error: unknown precision 'fp8'; choose from fp32, fp16, int8"
    )


def test_bundle_without_weights(exported_bundle: Path, tmp_path: Path) -> None:
    from edge_tl.bundle import stage_bundle

    bundle_dir = tmp_path / "b"
    shutil.copytree(exported_bundle, bundle_dir)
    base = Bundle.load(bundle_dir)
    with stage_bundle(bundle_dir, base=base) as stage:  # a device bundle: graphs only
        del stage.manifest.artifacts["model.pt"]  # type: ignore[union-attr]
        (stage.dir / "model.pt").unlink()
    with pytest.raises(BundleError, match=r"no torch artifact in the bundle"):
        export_bundle(bundle_dir, ExportOptions(precisions=(Precision.FP32,)))


def test_unknown_int8_exclusion_names_the_node(exported_bundle: Path, tmp_path: Path) -> None:
    bundle_dir = tmp_path / "b"
    shutil.copytree(exported_bundle, bundle_dir)
    with pytest.raises(ExportError, match="--int8-exclude: no node named nope"):
        export_bundle(
            bundle_dir,
            ExportOptions(precisions=(Precision.INT8,), int8_exclude=("nope",), calib_images=16),
        )
