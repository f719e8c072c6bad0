"""What a manifest records besides the model itself: scores per precision and per test set,
and engine build facts.

Typed so that writers and readers agree on keys: every record has one writer
(`scorecard.record_torch_scores`, `scorecard.record_test_scores`, export's
`record_precision_scores`, `export.tensorrt.build_engine`, `runtime.drift.score_reference`) and
readers use attributes, never string keys. Torch-free and numpy-free.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ScoredSet",
    "PrecisionMetrics",
    "InputProfile",
    "EngineInfo",
    "ScoreReference",
    "PriorInfo",
    "AdaptationInfo",
    "upgrade_v1",
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoredSet(_Record):
    """A classification report as the manifest keeps it (`scorecard.summarize`)."""

    num_images: int = Field(default=0, ge=0)
    top1: float | None = None
    top3: float | None = None
    macro_f1: float | None = None
    per_class_recall: dict[str, float] = Field(default_factory=dict)
    per_class_support: dict[str, int] = Field(default_factory=dict)
    confusion_matrix: list[list[int]] = Field(default_factory=list)
    root: str | None = None  # the folder the images came from
    measured_on: str | None = None  # the backend that scored them (Backend.describe())


class PrecisionMetrics(ScoredSet):
    """One model form's scores: `torch` (the trained model) or one ONNX precision."""

    precision: Literal["fp32", "fp16", "int8"]
    split: str = "val"
    agreement_fp32: float | None = None  # share of images with the same top-1 as fp32.onnx
    max_abs_logit_diff_fp32: float | None = None
    cpu_latency_ms_p50_batch1: float | None = None
    test_sets: dict[str, ScoredSet] = Field(default_factory=dict)


class InputProfile(_Record):
    min: int = Field(ge=1)
    opt: int = Field(ge=1)
    max: int = Field(ge=1)


class EngineInfo(_Record):
    """How a TensorRT plan was built: what the runtime checks before it deserializes one."""

    flavour: Literal["tensorrt", "tensorrt_rtx"]
    tensorrt_version: str
    target: str  # sm86, ...; for tensorrt, the GPU it was built on
    gpu_name: str | None = None
    aot: bool = False  # built ahead of time for `target`, without that GPU
    source: str  # the ONNX file it was built from
    input_profile: InputProfile
    hardware_compatible: bool = False
    version_compatible: bool = False
    build_seconds: float | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class PriorInfo(_Record):
    """The backbone's ImageNet classifier kept as a second opinion (models/prior.py): the
    graphs output each label's logit, then each label's prior log-probability."""

    imagenet_classes: dict[str, list[str]]  # per label; labels absent here get no prior
    floor: float = Field(ge=0, lt=1)  # prior share every label keeps


class AdaptationInfo(_Record):
    """One `edge-tl adapt` run: which camera's tracks went into the head, and what it scored."""

    created_at: str
    source_bundle: str
    labelled: str  # the exported ImageFolder of labelled crops
    streams: list[str]
    tracks: int = Field(ge=0)  # trained on
    crops: int = Field(ge=0)
    held_out_tracks: int = Field(ge=0)
    original_val_top1: float
    new_camera_track_top1: float | None  # on the held-out tracks, vote over their crops
    keep_original: float | None = None  # share of the source bundle's head averaged in


class ScoreReference(_Record):
    """The trained model's confidence and class mix on its validation split: what the
    daemon's drift check compares each stream's recent classifications against."""

    images: int = Field(ge=1)
    quantiles: list[float]  # the probabilities at which the two lists below are taken
    confidence: list[float]  # top-1 probability at each quantile
    margin: list[float]  # top-1 minus top-2 probability at each quantile
    low_confidence: float  # the validation 10th percentile of confidence
    class_mix: dict[str, float]  # share of validation images predicted as each label


_ENGINE_KEYS = set(EngineInfo.model_fields)


def upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 manifest rewritten as schema 2: engine facts move from `details` into
    `engine`, and metrics say `measured_on` where they said `path`. The next write of the
    bundle stores schema 2."""
    raw = copy.deepcopy(raw)
    for artifact in raw.get("artifacts", {}).values():
        if isinstance(artifact, dict) and artifact.get("kind") == "engine":
            details = artifact.get("details", {})
            artifact["engine"] = {k: details.pop(k) for k in list(details) if k in _ENGINE_KEYS}
    for entry in raw.get("metrics", {}).values():
        if isinstance(entry, dict):
            for record in [entry, *entry.get("test_sets", {}).values()]:
                if isinstance(record, dict) and "path" in record:
                    record["measured_on"] = record.pop("path")
    raw["schema_version"] = 2
    return raw
