"""The Triton model repository generator, checked structurally (the GPU flavours cannot run
here; the python flavour runs in tests/runtime/test_triton.py), and remote backend URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_tl.bundle import Bundle, Precision
from edge_tl.errors import BackendError, ExportError
from edge_tl.export.triton import TritonOptions, export_triton
from edge_tl.runtime.backends import create_backend
from edge_tl.runtime.backends.kserve import RemoteTarget, parse_remote


def test_onnxruntime_flavour_repository(exported_bundle: Path, tmp_path: Path) -> None:
    bundle = Bundle.load(exported_bundle)
    options = TritonOptions(precisions=(Precision.FP32, Precision.FP16), name="shapes cam")
    written = export_triton(bundle, tmp_path, options)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "shapes_cam_fp32/1",
        "shapes_cam_fp16/1",
    ]
    config = (tmp_path / "shapes_cam_fp32" / "config.pbtxt").read_text()
    spec = bundle.input_spec
    assert 'backend: "onnxruntime"' in config and "max_batch_size: 32" in config
    assert f"dims: [ 3, {spec.height}, {spec.width} ]" in config
    assert "data_type: TYPE_FP32" in config and "kind: KIND_CPU" in config
    assert "max_queue_delay_microseconds: 2000" in config
    assert (written[0] / "model.onnx").read_bytes() == (exported_bundle / "fp32.onnx").read_bytes()
    labels = (tmp_path / "shapes_cam_fp32" / "labels.txt").read_text().split()
    assert labels[: len(bundle.labels)] == bundle.labels
    assert not (written[0] / "model.py").exists()


def test_a_second_export_adds_a_version(exported_bundle: Path, tmp_path: Path) -> None:
    bundle = Bundle.load(exported_bundle)
    first = export_triton(bundle, tmp_path, TritonOptions(name="m"))[0]
    before = (first / "model.onnx").stat().st_mtime_ns
    second = export_triton(bundle, tmp_path, TritonOptions(name="m", flavour="onnxruntime"))[0]
    assert (first.name, second.name) == ("1", "2")
    assert (first / "model.onnx").stat().st_mtime_ns == before  # version 1 untouched
    assert not list((tmp_path / "m_fp32").glob(".staging-*"))


def test_a_model_of_another_kind_is_refused(exported_bundle: Path, tmp_path: Path) -> None:
    bundle = Bundle.load(exported_bundle)
    export_triton(bundle, tmp_path, TritonOptions(name="m"))
    with pytest.raises(ExportError, match="choose another --name"):
        export_triton(bundle, tmp_path, TritonOptions(name="m", flavour="python"))
    assert sorted(p.name for p in (tmp_path / "m_fp32").iterdir()) == [
        "1", "config.pbtxt", "labels.txt",
    ]  # fmt: skip


def test_tensorrt_flavour_needs_a_plan(exported_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no fp16 TensorRT plan.*edge-tl build"):
        export_triton(
            Bundle.load(exported_bundle),
            tmp_path,
            TritonOptions(flavour="tensorrt", precisions=(Precision.FP16,)),
        )


def test_remote_urls() -> None:
    assert parse_remote("onnxruntime") is None
    assert parse_remote("kserve://10.0.0.5/cars_fp16") == RemoteTarget(
        "grpc", "10.0.0.5", 8001, "cars_fp16"
    )
    assert parse_remote("triton+http://box:9000/cars/3") == RemoteTarget(
        "http", "box", 9000, "cars", "3"
    )
    for bad, message in (
        ("grpc://h/m", "unknown scheme 'grpc'"),
        ("kserve://h", "expected kserve://HOST"),
        ("kserve://h:x/m", "port is not a number"),
    ):
        with pytest.raises(BackendError, match=message):
            parse_remote(bad)


def test_kserve_is_named_not_chosen(exported_bundle: Path) -> None:
    with pytest.raises(BackendError, match="kserve://HOST:PORT/MODEL"):
        create_backend(Bundle.load(exported_bundle), "kserve")
