"""The bundle: one folder that holds a model in every form plus `manifest.json`, the contract
between training and deployment (labels, input spec, preprocessing, artifacts, metrics).

Loading validates the schema and every artifact's sha256. Writing is staged in a temporary
folder beside the target and swapped in at the end, so an interrupted command never leaves a
half-written bundle. Must not import torch or onnxruntime.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge_tl import __version__
from edge_tl.errors import BundleError, validation_message
from edge_tl.files import write_atomic
from edge_tl.records import (
    AdaptationInfo,
    EngineInfo,
    PrecisionMetrics,
    PriorInfo,
    ScoreReference,
    upgrade_v1,
)

__all__ = [
    "SCHEMA_VERSION",
    "MANIFEST_NAME",
    "GRAPH_INPUT",
    "GRAPH_OUTPUT",
    "Precision",
    "ArtifactKind",
    "ColorOrder",
    "ResizePolicy",
    "Interpolation",
    "InputSpec",
    "RawInput",
    "Artifact",
    "ModelInfo",
    "SplitInfo",
    "DatasetInfo",
    "Provenance",
    "Manifest",
    "Bundle",
    "BundleStage",
    "stage_bundle",
    "check_bundle_target",
    "sha256_file",
    "library_versions",
]

SCHEMA_VERSION = 2  # 2: typed metrics and engine records (records.py); 1 is upgraded on load
MANIFEST_NAME = "manifest.json"
# tensor names of every exported graph: part of the bundle contract, the runtime relies on them
GRAPH_INPUT, GRAPH_OUTPUT = "input", "logits"
_STAGING_PREFIX = ".edge-tl-staging-"


class Precision(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class ArtifactKind(str, Enum):
    TORCH = "torch"  # fine-tuned weights, for re-export
    ONNX = "onnx"
    ENGINE = "engine"  # TensorRT plan


class ColorOrder(str, Enum):
    RGB = "RGB"
    BGR = "BGR"


class ResizePolicy(str, Enum):
    SQUASH = "squash"  # resize to the input size, aspect ratio not kept
    CENTER_CROP = "center_crop"  # shorter side to size / crop_pct, then a centre crop


class Interpolation(str, Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    AREA = "area"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    """What the network expects; the runtime derives all preprocessing from this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    height: int = Field(gt=0, le=8192)
    width: int = Field(gt=0, le=8192)
    layout: Literal["NCHW"] = "NCHW"
    color_order: ColorOrder = ColorOrder.RGB
    dtype: Literal["float32"] = "float32"
    pixel_scale: float = Field(default=1.0 / 255.0, gt=0)  # applied before mean/std
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: ResizePolicy = ResizePolicy.CENTER_CROP
    crop_pct: float = Field(default=0.875, gt=0, le=1)
    interpolation: Interpolation = Interpolation.BICUBIC

    @field_validator("std")
    @classmethod
    def _std_positive(cls, std: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s <= 0 for s in std):
            raise ValueError("every std value must be > 0")
        return std


class RawInput(_Strict):
    """Set when the graphs were exported with fused preprocessing: they take resized camera
    pixels (uint8 NHWC in `color_order`) and cast, scale, normalize and transpose themselves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Literal["NHWC"] = "NHWC"
    dtype: Literal["uint8"] = "uint8"
    color_order: ColorOrder = ColorOrder.BGR


class Artifact(_Strict):
    file: str
    kind: ArtifactKind
    precision: Precision | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    details: dict[str, Any] = Field(default_factory=dict)  # free-form notes (opset, parity...)
    engine: EngineInfo | None = None  # engines only: what the runtime checks before loading

    @field_validator("file")
    @classmethod
    def _plain_name(cls, file: str) -> str:
        if not file or "/" in file or "\\" in file or file.startswith("."):
            raise ValueError(f"'{file}' must be a plain file name inside the bundle")
        return file

    @model_validator(mode="after")
    def _engine_info_on_engines(self) -> Artifact:
        if (self.kind == ArtifactKind.ENGINE) != (self.engine is not None):
            raise ValueError(
                f"'{self.file}': engine info belongs to engine artifacts, and only them"
            )
        return self


class ModelInfo(_Strict):
    backbone: str  # edge-tl registry name
    architecture: str  # timm model name
    num_classes: int = Field(ge=2)
    weights: str  # where the pretrained weights came from
    feature_dim: int | None = None


class SplitInfo(_Strict):
    seed: int
    val_fraction: float = Field(ge=0, lt=1)
    val_files: list[str] = Field(default_factory=list)  # relative to the dataset root


class DatasetInfo(_Strict):
    root: str
    fingerprint: str
    num_images: int = Field(ge=0)
    class_counts: dict[str, int] = Field(default_factory=dict)
    split: SplitInfo | None = None


class Provenance(_Strict):
    created_at: str
    edge_tl: str
    python: str
    platform: str
    versions: dict[str, str] = Field(default_factory=dict)  # torch, timm, onnx, onnxruntime...
    dataset: DatasetInfo | None = None


class Manifest(_Strict):
    schema_version: int
    name: str
    labels: list[str] = Field(min_length=2)
    input: InputSpec
    raw_input: RawInput | None = None  # ONNX graphs and engines only; model.pt takes `input`
    model: ModelInfo
    artifacts: dict[str, Artifact] = Field(default_factory=dict)
    metrics: dict[str, PrecisionMetrics] = Field(default_factory=dict)  # "torch" or a precision
    reference: ScoreReference | None = None  # for the daemon's drift check; None: not checked
    prior: PriorInfo | None = None  # graphs also output an ImageNet prior per label
    adaptations: list[AdaptationInfo] = Field(default_factory=list)  # edge-tl adapt runs
    provenance: Provenance

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("schema_version") == 1:
            return upgrade_v1(raw)
        return raw

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, version: int) -> int:
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"schema {version} was written by a newer edge-tl (this one reads up to "
                f"{SCHEMA_VERSION}); upgrade edge-tl"
            )
        if version < 1:
            raise ValueError(f"schema {version} is not a valid version")
        return version

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be unique")
        return labels

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.model.num_classes != len(self.labels):
            raise ValueError(
                f"model.num_classes is {self.model.num_classes} but there are "
                f"{len(self.labels)} labels"
            )
        for key, artifact in self.artifacts.items():
            if key != artifact.file:
                raise ValueError(f"artifacts key '{key}' differs from its file '{artifact.file}'")
        return self


class Bundle:
    """A validated bundle folder. Use `Bundle.load(path)`; construct through `stage_bundle`."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def load(cls, path: str | os.PathLike[str], verify: bool = True) -> Bundle:
        """Read and validate `path/manifest.json`; with `verify`, check every artifact's hash."""
        root = Path(path)
        if not root.exists():
            raise BundleError(f"{root}: no such bundle folder")
        if not root.is_dir():
            raise BundleError(f"{root}: a bundle is a folder, this is a file")
        manifest = _read_manifest(root / MANIFEST_NAME)
        bundle = cls(root, manifest)
        bundle.check_artifacts(verify_hashes=verify)
        return bundle

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    @property
    def input_spec(self) -> InputSpec:
        return self.manifest.input

    def find(self, kind: ArtifactKind, precision: Precision | None = None) -> Artifact | None:
        for artifact in self.manifest.artifacts.values():
            if artifact.kind == kind and (precision is None or artifact.precision == precision):
                return artifact
        return None

    def artifact_path(self, kind: ArtifactKind, precision: Precision | None = None) -> Path:
        """Path of the artifact of `kind` (and `precision`), or a BundleError naming what exists."""
        artifact = self.find(kind, precision)
        if artifact is None:
            have = ", ".join(sorted(self.manifest.artifacts)) or "nothing"
            wanted = kind.value + (f" {precision.value}" if precision else "")
            hint = " (run `edge-tl export` first)" if kind == ArtifactKind.ONNX else ""
            raise BundleError(
                f"{self.path}: no {wanted} artifact in the bundle (it has {have}){hint}"
            )
        return self.path / artifact.file

    def check_artifacts(self, verify_hashes: bool = True) -> None:
        for key, artifact in self.manifest.artifacts.items():
            file = self.path / artifact.file
            if not file.is_file():
                raise BundleError(
                    f"{file}: listed in {MANIFEST_NAME} (artifacts.{key}) but the file is missing"
                )
            if file.stat().st_size != artifact.bytes:
                raise BundleError(
                    f"{file}: size {file.stat().st_size} differs from {MANIFEST_NAME} "
                    f"(artifacts.{key}.bytes = {artifact.bytes}); the file was changed or truncated"
                )
            if verify_hashes and sha256_file(file) != artifact.sha256:
                raise BundleError(
                    f"{file}: sha256 differs from {MANIFEST_NAME} (artifacts.{key}.sha256); "
                    "the file was changed or corrupted: re-run the command that wrote it"
                )


class BundleStage:
    """A bundle being written in a staging folder; `stage_bundle` commits or discards it."""

    def __init__(self, directory: Path, manifest: Manifest | None) -> None:
        self.dir = directory
        self.manifest = manifest

    def new_file(self, file: str) -> Path:
        """Path to write `file` at. Unlinks the hard link to the base bundle's copy first, so
        writing never reaches into the bundle being replaced."""
        path = self.dir / file
        path.unlink(missing_ok=True)
        return path

    def add_artifact(
        self,
        file: str,
        kind: ArtifactKind,
        precision: Precision | None = None,
        details: dict[str, Any] | None = None,
        engine: EngineInfo | None = None,
    ) -> Artifact:
        """Record `self.dir/file` (already written) in the manifest with its hash and size."""
        if self.manifest is None:
            raise BundleError(f"{self.dir}: set stage.manifest before adding artifacts")
        path = self.dir / file
        artifact = Artifact(
            file=file,
            kind=kind,
            precision=precision,
            sha256=sha256_file(path),
            bytes=path.stat().st_size,
            details=details or {},
            engine=engine,
        )
        self.manifest.artifacts[file] = artifact
        return artifact


def check_bundle_target(target: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Fail now, before minutes of work, when `target` cannot become a bundle: it exists
    (without `overwrite`) or the nearest existing folder above it is not writable."""
    target = Path(target).absolute()
    if target.exists() and not overwrite:
        raise BundleError(f"{target}: already exists; pass --overwrite or choose another path")
    existing = next(p for p in target.parents if p.exists())
    if not os.access(existing, os.W_OK):
        raise BundleError(f"{existing}: not writable, so {target.name} cannot be written there")


@contextlib.contextmanager
def stage_bundle(
    target: str | os.PathLike[str], base: Bundle | None = None, overwrite: bool = False
) -> Iterator[BundleStage]:
    """Stage a new version of the bundle at `target`, then swap it in atomically.

    With `base`, the stage starts as a copy of that bundle (files hard-linked, so untouched
    artifacts cost nothing). On an exception nothing at `target` changes.
    """
    target = Path(target).absolute()
    check_bundle_target(target, overwrite or base is not None)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"{target.parent}: cannot create the folder ({exc.strerror})") from exc
    _remove_abandoned_stages(target.parent)
    if not os.access(target.parent, os.W_OK):
        raise BundleError(f"{target.parent}: not writable")
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{os.getpid()}-", dir=target.parent))
    os.chmod(staging, 0o777 & ~_current_umask())  # mkdtemp makes 0700; a bundle is shared
    try:
        manifest = None
        if base is not None:
            for item in base.path.iterdir():
                if item.is_file():
                    _link_or_copy(item, staging / item.name)
                elif item.is_dir():  # reports/
                    shutil.copytree(item, staging / item.name, copy_function=_link_or_copy)
            manifest = base.manifest.model_copy(deep=True)
        stage = BundleStage(staging, manifest)
        yield stage
        if stage.manifest is None:
            raise BundleError(f"{target}: nothing to write (no manifest was set)")
        _write_manifest(staging, stage.manifest)
        Bundle.load(staging)  # never swap in something we could not read back
        _swap_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def library_versions(
    names: tuple[str, ...] = ("torch", "timm", "onnx", "onnxruntime", "numpy", "cv2"),
) -> dict[str, str]:
    """Installed versions of the libraries that shaped an artifact (without importing them)."""
    from importlib import metadata

    dist_names = {"cv2": "opencv-python-headless", "onnxruntime": "onnxruntime"}
    versions: dict[str, str] = {}
    for name in names:
        candidates = [dist_names.get(name, name)]
        if name == "onnxruntime":
            candidates.append("onnxruntime-gpu")
        if name == "cv2":
            candidates += ["opencv-python", "opencv-contrib-python-headless"]
        for dist in candidates:
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def new_provenance(dataset: DatasetInfo | None = None) -> Provenance:
    return Provenance(
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        edge_tl=__version__,
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        versions=library_versions(),
        dataset=dataset,
    )


def _read_manifest(file: Path) -> Manifest:
    if not file.is_file():
        raise BundleError(f"{file}: not found; is {file.parent} an edge-tl bundle?")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise BundleError(f"{file}: not UTF-8 text ({exc.reason})") from exc
    if not isinstance(raw, dict):
        raise BundleError(f"{file}: expected a JSON object at the top level")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{file}: {validation_message(exc)}") from exc


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
    write_atomic(directory / MANIFEST_NAME, text)


def _link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _swap_into_place(staging: Path, target: Path) -> None:
    """Make `staging` appear at `target`; readers see the old or the new bundle, never a mix."""
    if not target.exists():
        os.rename(staging, target)
        return
    if _rename_exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the old version
        return
    old = target.with_name(f"{_STAGING_PREFIX}{os.getpid()}-old-{target.name}")
    os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths with Linux renameat2(RENAME_EXCHANGE); False if unsupported."""
    if not hasattr(os, "sched_getaffinity"):  # not Linux
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _remove_abandoned_stages(parent: Path) -> None:
    """Delete staging folders left by killed processes (their pid no longer runs)."""
    for item in parent.glob(f"{_STAGING_PREFIX}*"):
        pid_text = item.name[len(_STAGING_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(item, ignore_errors=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
