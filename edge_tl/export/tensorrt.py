"""`edge-tl build`: a TensorRT plan from the bundle's precision-explicit ONNX graph.

Strongly typed (the precision is in the graph: no FP16/INT8 builder flags, no calibrators,
which TensorRT 11 removed), dynamic-batch profile, workspace limit, optimization level,
persisted timing cache, optional hardware/version compatibility and DLA. One code path for
`tensorrt` 10.x/11.x and `tensorrt_rtx`; TensorRT-RTX also builds ahead of time for a named
architecture (`--target sm86`) on a machine without a GPU. Every None/False TensorRT returns
is checked where it happens, and parser failures list every error with node and operator.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_tl._malloc import tune_malloc
from edge_tl.bundle import ArtifactKind, Bundle, Precision, stage_bundle
from edge_tl.errors import EngineBuildError
from edge_tl.files import write_atomic
from edge_tl.records import EngineInfo, InputProfile
from edge_tl.runtime.trt_flavour import import_tensorrt, make_logger

__all__ = [
    "BuildOptions",
    "EngineReport",
    "parse_batch_profile",
    "build_engine",
    "build_plan",
    "engine_file_name",
]

log = logging.getLogger(__name__)

HARDWARE_COMPAT = ("none", "ampere_plus", "same_cc")


@dataclass(frozen=True)
class BuildOptions:
    precision: Precision = Precision.FP16
    batch: tuple[int, int, int] = (1, 8, 32)  # min, opt, max
    workspace_mib: int | None = None
    optimization_level: int = 3
    hardware_compat: str = "none"
    version_compatible: bool = False
    dla_core: int | None = None
    target: str | None = None  # TensorRT-RTX ahead-of-time architecture, e.g. "sm86"
    flavour: str = "auto"
    timing_cache: Path | None = None  # default: beside the bundle, reused by later builds


@dataclass(frozen=True)
class EngineReport:
    file: str
    bytes: int
    flavour: str
    version: str
    target: str
    gpu_name: str | None
    seconds: float
    options: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_batch_profile(text: str) -> tuple[int, int, int]:
    """'1:8:32' → (1, 8, 32); a single number N means N:N:N."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise EngineBuildError(f"--batch '{text}': expected MIN:OPT:MAX, e.g. 1:8:32") from None
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
        raise EngineBuildError(f"--batch '{text}': need 1 <= MIN <= OPT <= MAX, e.g. 1:8:32")
    return values[0], values[1], values[2]


def engine_file_name(precision: Precision, flavour: str, target: str) -> str:
    return f"{precision.value}.{flavour}-{target}.engine"


def build_engine(bundle_path: str | Path, options: BuildOptions = BuildOptions()) -> EngineReport:
    """Build the plan and add it to the bundle (staged; other engines are kept)."""
    tune_malloc()
    bundle = Bundle.load(bundle_path)
    onnx_path = bundle.artifact_path(ArtifactKind.ONNX, options.precision)
    flavour, trt = import_tensorrt(options.flavour)
    target, gpu_name = _resolve_target(flavour, options.target)
    cache_path = (
        options.timing_cache
        or bundle.path.parent / f".{bundle.path.name}.{flavour}-{target}.timing-cache"
    )
    started = time.perf_counter()
    plan = build_plan(trt, flavour, onnx_path, options, target, cache_path)
    seconds = time.perf_counter() - started
    file = engine_file_name(options.precision, flavour, target)
    report = EngineReport(
        file=file,
        bytes=len(plan),
        flavour=flavour,
        version=trt.__version__,
        target=target,
        gpu_name=gpu_name,
        seconds=round(seconds, 2),
        options=_jsonable_options(options),
    )
    with stage_bundle(bundle.path, base=bundle) as stage:
        stage.new_file(file).write_bytes(plan)
        stage.add_artifact(
            file,
            ArtifactKind.ENGINE,
            options.precision,
            engine=EngineInfo(
                flavour=flavour,
                tensorrt_version=trt.__version__,
                target=target,
                gpu_name=gpu_name,
                aot=options.target is not None,
                source=onnx_path.name,
                input_profile=InputProfile(
                    min=options.batch[0], opt=options.batch[1], max=options.batch[2]
                ),
                hardware_compatible=options.hardware_compat != "none",
                version_compatible=options.version_compatible,
                build_seconds=report.seconds,
                options=report.options,
            ),
        )
    log.info("built %s (%.1f MB) in %.1f s", file, report.bytes / 1e6, seconds)
    return report


def build_plan(
    trt: Any,
    flavour: str,
    onnx_path: Path,
    options: BuildOptions,
    target: str,
    cache_path: Path | None,
) -> bytes:
    """Parse `onnx_path` strongly typed and build a serialized plan; raises EngineBuildError."""
    logger = make_logger(trt)
    builder = _not_none(trt.Builder(logger), "trt.Builder", logger)
    network = _not_none(builder.create_network(_strongly_typed_flag(trt)), "create_network", logger)
    parser = _not_none(trt.OnnxParser(network, logger), "OnnxParser", logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineBuildError(
            f"{onnx_path.name}: TensorRT's ONNX parser rejected it: {_parser_errors(parser)}"
        )
    config = _not_none(builder.create_builder_config(), "create_builder_config", logger)
    _add_profile(builder, network, config, options.batch, onnx_path)
    if options.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if not 0 <= options.optimization_level <= 5:
        raise EngineBuildError(f"--opt-level {options.optimization_level}: must be 0..5")
    config.builder_optimization_level = options.optimization_level
    _set_compatibility(trt, config, options)
    _set_dla(trt, builder, config, options.dla_core)
    if flavour == "tensorrt_rtx" and options.target:
        config.num_compute_capabilities = 1
        config.set_compute_capability(_compute_capability(trt, options.target), 0)
    cache = _load_timing_cache(config, cache_path) if flavour == "tensorrt" else None
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        reasons = "; ".join(logger.errors()[-3:]) or "no reason logged"
        raise EngineBuildError(f"{onnx_path.name}: TensorRT could not build an engine ({reasons})")
    if cache is not None and cache_path is not None:
        _save_timing_cache(config, cache_path)
    return bytes(memoryview(plan))


def _strongly_typed_flag(trt: Any) -> int:
    # 10.x: opt-in; 11.x and RTX: always on (the flag is ignored but still accepted)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 1 << int(flag) if flag is not None else 0


def _add_profile(
    builder: Any, network: Any, config: Any, batch: tuple[int, int, int], onnx_path: Path
) -> None:
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = list(tensor.shape)
        if any(d < 0 for d in dims[1:]):
            raise EngineBuildError(
                f"{onnx_path.name}: input '{tensor.name}' has dynamic non-batch dims {dims}"
            )
        if dims[0] >= 0 and dims[0] not in batch:
            raise EngineBuildError(
                f"{onnx_path.name}: input '{tensor.name}' has a fixed batch of {dims[0]}; "
                f"--batch {':'.join(map(str, batch))} does not fit it"
            )
        rest = tuple(dims[1:])
        profile.set_shape(tensor.name, (batch[0], *rest), (batch[1], *rest), (batch[2], *rest))
    if config.add_optimization_profile(profile) < 0:
        raise EngineBuildError(
            f"{onnx_path.name}: TensorRT refused the optimization profile {batch}"
        )


def _set_compatibility(trt: Any, config: Any, options: BuildOptions) -> None:
    if options.hardware_compat not in HARDWARE_COMPAT:
        raise EngineBuildError(
            f"--hardware-compat {options.hardware_compat}: choose {', '.join(HARDWARE_COMPAT)}"
        )
    if options.hardware_compat != "none":
        levels = {"ampere_plus": "AMPERE_PLUS", "same_cc": "SAME_COMPUTE_CAPABILITY"}
        level = getattr(trt.HardwareCompatibilityLevel, levels[options.hardware_compat], None)
        if level is None:
            raise EngineBuildError(
                f"--hardware-compat {options.hardware_compat}: not offered by TensorRT {trt.__version__}"
            )
        config.hardware_compatibility_level = level
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)


def _set_dla(trt: Any, builder: Any, config: Any, core: int | None) -> None:
    if core is None:
        return
    cores = getattr(builder, "num_DLA_cores", 0)
    if core >= cores:
        raise EngineBuildError(
            f"--dla-core {core}: this device has {cores} DLA core(s) (DLA exists on Jetson AGX/NX only)"
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def _compute_capability(trt: Any, target: str) -> Any:
    name = target.upper()
    value = getattr(trt.ComputeCapability, name, None)
    if value is None or name in ("CURRENT", "NONE"):
        offered = sorted(n.lower() for n in dir(trt.ComputeCapability) if re.fullmatch(r"SM\d+", n))
        raise EngineBuildError(
            f"--target {target}: TensorRT-RTX {trt.__version__} builds for {', '.join(offered)}"
        )
    return value


def _resolve_target(flavour: str, target: str | None) -> tuple[str, str | None]:
    """(architecture the plan is for, GPU name or None for ahead-of-time builds)."""
    if target is not None:
        if flavour != "tensorrt_rtx":
            raise EngineBuildError(
                "--target is for TensorRT-RTX ahead-of-time builds; datacenter/Jetson TensorRT "
                "builds for the GPU it runs on"
            )
        if not re.fullmatch(r"sm\d{2,3}", target.lower()):
            raise EngineBuildError(f"--target '{target}': expected an architecture like sm86")
        return target.lower(), None
    from edge_tl.errors import BackendError
    from edge_tl.runtime.cuda import gpu_info

    try:
        gpu = gpu_info()
    except (BackendError, ImportError) as exc:
        hint = (
            " or pass --target sm86 (TensorRT-RTX builds ahead of time without one)"
            if flavour == "tensorrt_rtx"
            else ""
        )
        raise EngineBuildError(f"building for this machine's GPU needs one: {exc}{hint}") from exc
    return gpu.sm, gpu.name


def _load_timing_cache(config: Any, path: Path | None) -> Any:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, False):
        log.warning("timing cache %s does not match this TensorRT/GPU; starting a new one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, True)
    return cache


def _save_timing_cache(config: Any, path: Path) -> None:
    write_atomic(path, bytes(memoryview(config.get_timing_cache().serialize())))


def _parser_errors(parser: Any) -> str:
    errors = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        node = error.node_name() or f"#{error.node()}"
        errors.append(f"node '{node}' ({error.node_operator()}): {error.desc()} [{error.code()}]")
    return "; ".join(errors) or "no error details"


def _not_none(value: Any, what: str, logger: Any) -> Any:
    if value is None:
        reasons = "; ".join(logger.errors()[-2:]) or "no reason logged"
        raise EngineBuildError(f"TensorRT {what} failed: {reasons}")
    return value


def _jsonable_options(options: BuildOptions) -> dict[str, Any]:
    data = asdict(options)
    data["precision"] = options.precision.value
    data["batch"] = list(options.batch)
    data["timing_cache"] = str(options.timing_cache) if options.timing_cache else None
    return data
