"""TensorRT engines: real ahead-of-time builds with TensorRT-RTX's builder (no GPU needed),
parser rejections naming the node, and the rules that refuse a mismatched plan.
Running an engine needs a GPU; those tests skip with that reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_tl.bundle import ArtifactKind, Bundle, Precision
from edge_tl.errors import BackendError, EngineBuildError
from edge_tl.export.tensorrt import BuildOptions, build_engine, build_plan, parse_batch_profile
from edge_tl.runtime.trt_flavour import EngineTarget, engine_mismatch
from tests.conftest import run_cli

trt = pytest.importorskip(
    "tensorrt_rtx", reason="TensorRT-RTX builder not installed (pip install 'edge-tl[trt-rtx]')"
)
pytestmark = pytest.mark.trt


def _has_gpu() -> bool:
    try:
        from edge_tl.runtime.cuda import gpu_info

        gpu_info()
    except Exception:
        return False
    return True


@pytest.fixture
def bundle_copy(exported_bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(exported_bundle, target)
    return target


@pytest.mark.slow
@pytest.mark.parametrize("precision", list(Precision))
def test_aot_build_of_every_exported_graph(bundle_copy: Path, precision: Precision) -> None:
    report = build_engine(
        bundle_copy, BuildOptions(precision=precision, target="sm86", flavour="tensorrt_rtx")
    )
    bundle = Bundle.load(bundle_copy)  # hashes verified, including the new plan
    engine = bundle.find(ArtifactKind.ENGINE, precision)
    assert (
        engine is not None
        and engine.file == report.file == f"{precision.value}.tensorrt_rtx-sm86.engine"
    )
    assert engine.bytes > 100_000
    info = engine.engine
    assert info is not None
    assert info.flavour == "tensorrt_rtx" and info.tensorrt_version == trt.__version__
    assert info.target == "sm86" and info.aot is True and info.gpu_name is None
    assert info.input_profile.model_dump() == {"min": 1, "opt": 8, "max": 32}
    assert info.source == f"{precision.value}.onnx"


@pytest.mark.slow
def test_build_cli_and_second_engine_kept(bundle_copy: Path) -> None:
    for target in ("sm86", "sm89"):
        result = run_cli(
            "build", str(bundle_copy), "--precision", "fp16", "--target", target, "--batch", "1:4:8"
        )
        assert result.returncode == 0, result.stderr
    engines = [
        a.file
        for a in Bundle.load(bundle_copy).manifest.artifacts.values()
        if a.kind == ArtifactKind.ENGINE
    ]
    assert sorted(engines) == ["fp16.tensorrt_rtx-sm86.engine", "fp16.tensorrt_rtx-sm89.engine"]


def _graph(tmp_path: Path, nodes: list, inits: list, name: str) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 8, 8])],
        inits,
    )
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    return path


def _build(path: Path) -> bytes:
    options = BuildOptions(
        precision=Precision.INT8, batch=(1, 1, 4), target="sm86", flavour="tensorrt_rtx"
    )
    return build_plan(trt, "tensorrt_rtx", path, options, "sm86", None)


def test_non_zero_zero_point_is_rejected_with_the_node_named(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="quant_input"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dequant_input"),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(3, np.int8), "zp"),
    ]
    with pytest.raises(
        EngineBuildError,
        match=r"rejected it: node '(de)?quant_input' \((De)?QuantizeLinear\).*[Zz]ero",
    ):
        _build(_graph(tmp_path, nodes, inits, "zp.onnx"))
    inits[1] = numpy_helper.from_array(np.array(0, np.int8), "zp")
    assert len(_build(_graph(tmp_path, nodes, inits, "ok.onnx"))) > 0  # the symmetric twin builds


def test_unsupported_operator_is_rejected_with_the_node_named(tmp_path: Path) -> None:
    from onnx import helper

    nodes = [
        helper.make_node(
            "FusedMatMulInteger", ["x"], ["y"], name="mystery_op", domain="com.example"
        )
    ]
    with pytest.raises(EngineBuildError, match=r"node 'mystery_op' \(FusedMatMulInteger\)"):
        _build(_graph(tmp_path, nodes, [], "custom.onnx"))


def test_build_errors_are_one_line(bundle_copy: Path) -> None:
    with pytest.raises(EngineBuildError, match="need 1 <= MIN <= OPT <= MAX"):
        parse_batch_profile("8:4:1")
    assert parse_batch_profile("16") == (16, 16, 16)
    with pytest.raises(EngineBuildError, match="--target sm90: TensorRT-RTX .* builds for .*sm86"):
        build_engine(bundle_copy, BuildOptions(target="sm90", flavour="tensorrt_rtx"))
    if not _has_gpu():
        with pytest.raises(EngineBuildError, match="needs one: .*pass --target sm86"):
            build_engine(bundle_copy, BuildOptions(flavour="tensorrt_rtx"))


def test_mismatched_plans_are_refused() -> None:
    built = EngineTarget("tensorrt", "10.3.0", "sm86", "NVIDIA A10")
    assert engine_mismatch(built, EngineTarget("tensorrt", "10.3.0", "sm86")) is None
    assert "built with tensorrt 10.3.0, this is 10.8.0" in engine_mismatch(
        built, EngineTarget("tensorrt", "10.8.0", "sm86")
    )
    assert "targets sm86, this GPU is sm89 (RTX 4090)" in engine_mismatch(
        built, EngineTarget("tensorrt", "10.3.0", "sm89", "RTX 4090")
    )
    assert "this runtime is tensorrt_rtx" in engine_mismatch(
        built, EngineTarget("tensorrt_rtx", "1.7", "sm86")
    )
    portable = EngineTarget(
        "tensorrt", "10.3.0", "sm86", hardware_compatible=True, version_compatible=True
    )
    assert engine_mismatch(portable, EngineTarget("tensorrt", "10.8.0", "sm89")) is None
    assert "targets sm86" in engine_mismatch(portable, EngineTarget("tensorrt", "10.3.0", "sm75"))
    assert "this is 11.0.0" in engine_mismatch(portable, EngineTarget("tensorrt", "11.0.0", "sm86"))


@pytest.mark.slow
def test_backend_selection_explains_itself(
    exported_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from edge_tl.runtime.backends import create_backend, select_backend
    from edge_tl.runtime.backends.tensorrt import TensorRTBackend

    bundle = Bundle.load(exported_bundle)
    reason = TensorRTBackend.cannot_serve(bundle, Precision.FP16)
    assert reason is not None and "edge-tl build" in reason  # no fp16 engine in this bundle
    with caplog.at_level("INFO", logger="edge_tl"):
        assert select_backend(bundle, Precision.FP16) in ("openvino", "onnxruntime")
    assert "tensorrt: the bundle has no fp16 TensorRT engine" in caplog.text
    with pytest.raises(BackendError, match="int8 runs from int8.onnx"):
        create_backend(bundle, "torch", Precision.INT8)
    with pytest.raises(
        BackendError, match="unknown backend 'tflite'; choose one of: auto, tensorrt, openvino"
    ):
        create_backend(bundle, "tflite")


@pytest.mark.slow
def test_engine_on_a_machine_without_gpu_is_refused(bundle_copy: Path, tiny_dataset: Path) -> None:
    if _has_gpu():
        pytest.skip("this machine has a GPU; the refusal is for machines without one")
    build_engine(
        bundle_copy, BuildOptions(precision=Precision.FP16, target="sm86", flavour="tensorrt_rtx")
    )
    result = run_cli(
        "predict",
        str(bundle_copy),
        str(next((tiny_dataset / "disc").iterdir())),
        "--backend",
        "tensorrt",
        "--precision",
        "fp16",
    )
    assert result.returncode == 1
    assert (
        "no NVIDIA GPU or driver on this machine" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


@pytest.mark.gpu
def test_tensorrt_backend_runs_on_a_gpu(bundle_copy: Path) -> None:
    if not _has_gpu():
        pytest.skip(
            "needs an NVIDIA GPU and driver: deserialize_cuda_engine, execute_async_v3 and CUDA graphs cannot run on CPU"
        )
    from edge_tl.runtime.backends.ort import OnnxRuntimeBackend
    from edge_tl.runtime.backends.tensorrt import TensorRTBackend
    from edge_tl.runtime.cuda import gpu_info

    sm = gpu_info().sm
    build_engine(
        bundle_copy, BuildOptions(precision=Precision.FP32, target=sm, flavour="tensorrt_rtx")
    )
    bundle = Bundle.load(bundle_copy)
    x = np.random.default_rng(0).standard_normal((4, 3, 64, 64), np.float32)
    with (
        TensorRTBackend(bundle, Precision.FP32) as engine,
        OnnxRuntimeBackend(bundle, Precision.FP32) as reference,
    ):
        np.testing.assert_allclose(engine.infer(x), reference.infer(x), rtol=5e-3, atol=5e-3)
        np.testing.assert_allclose(
            engine.infer(x[:1]), reference.infer(x[:1]), rtol=5e-3, atol=5e-3
        )
