"""--fuse-preprocess: graphs that take uint8 NHWC camera frames give the same answers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_tl.bundle import Bundle, ColorOrder, Precision
from edge_tl.export import ExportOptions, export_bundle
from edge_tl.images import load_image
from edge_tl.runtime import Classifier, create_backend

onnx = pytest.importorskip("onnx")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fused_bundle(exported_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("fused") / "bundle"
    shutil.copytree(exported_bundle, target)
    export_bundle(
        target,
        ExportOptions(
            precisions=(Precision.FP32, Precision.INT8),
            fuse_preprocess=True,
            calib_images=16,
            latency_iterations=3,
        ),
    )
    return target


def test_fused_graph_takes_uint8_nhwc(fused_bundle: Path) -> None:
    bundle = Bundle.load(fused_bundle)
    assert (
        bundle.manifest.raw_input is not None
        and bundle.manifest.raw_input.color_order == ColorOrder.BGR
    )
    model = onnx.load(str(fused_bundle / "fp32.onnx"))
    tensor = model.graph.input[0].type.tensor_type
    assert tensor.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in tensor.shape.dim][1:] == [64, 64, 3]
    # the fp16 graph of the unfused export took the other input format: it was dropped
    onnx_files = {a.file for a in bundle.manifest.artifacts.values() if a.kind.value == "onnx"}
    assert onnx_files == {"fp32.onnx", "int8.onnx"}
    assert "fp16" not in bundle.manifest.metrics and not (fused_bundle / "fp16.onnx").exists()


def test_fused_and_unfused_agree(
    fused_bundle: Path, exported_bundle: Path, tiny_dataset: Path
) -> None:
    images = [load_image(p) for p in sorted((tiny_dataset / "stripes").iterdir())[:6]]
    with (
        create_backend(Bundle.load(exported_bundle), "onnxruntime") as plain,
        create_backend(Bundle.load(fused_bundle), "onnxruntime") as fused,
    ):
        assert fused.raw_input is not None and plain.raw_input is None
        a = Classifier(plain, plain.bundle.labels).classify(images)
        b = Classifier(fused, fused.bundle.labels).classify(images)
    assert [p.label for p in a] == [p.label for p in b]
    np.testing.assert_allclose([p.score for p in a], [p.score for p in b], atol=1e-4)
    metrics = Bundle.load(fused_bundle).manifest.metrics
    assert metrics["fp32"].top1 == Bundle.load(exported_bundle).manifest.metrics["fp32"].top1


def test_fused_graph_builds_in_tensorrt(fused_bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX builder not installed")
    from edge_tl.export.tensorrt import BuildOptions, build_engine

    work = tmp_path / "b"
    shutil.copytree(fused_bundle, work)
    report = build_engine(
        work, BuildOptions(precision=Precision.INT8, target="sm86", flavour="tensorrt_rtx")
    )
    assert report.bytes > 100_000


def test_fp16_io_graph_is_served(exported_bundle: Path, tmp_path: Path, tiny_dataset: Path) -> None:
    work = tmp_path / "b"
    shutil.copytree(exported_bundle, work)
    export_bundle(
        work,
        ExportOptions(
            precisions=(Precision.FP16,), fp16_io=True, calib_images=16, latency_iterations=2
        ),
    )
    model = onnx.load(str(work / "fp16.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    metrics = Bundle.load(work).manifest.metrics["fp16"]
    assert metrics.agreement_fp32 == 1.0
    images = [load_image(p) for p in sorted((tiny_dataset / "disc").iterdir())[:3]]
    with create_backend(Bundle.load(work), "onnxruntime", Precision.FP16) as backend:
        assert all(
            p.label == "disc" for p in Classifier(backend, backend.bundle.labels).classify(images)
        )
