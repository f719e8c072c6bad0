"""fp32.onnx from the bundle's model.pt: torch.export-based exporter, one self-contained file,
dynamic batch, opset >= 19, labels and preprocessing in the graph's metadata_props.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from edge_tl import __version__
from edge_tl._deps import require
from edge_tl.bundle import GRAPH_INPUT, GRAPH_OUTPUT, ArtifactKind, Bundle, InputSpec, RawInput
from edge_tl.errors import ExportError
from edge_tl.preprocess import normalization_constants

__all__ = ["torch_to_onnx", "embed_metadata", "DEFAULT_OPSET", "INPUT_NAME", "OUTPUT_NAME"]

log = logging.getLogger(__name__)

DEFAULT_OPSET = 20
INPUT_NAME, OUTPUT_NAME = GRAPH_INPUT, GRAPH_OUTPUT


def torch_to_onnx(
    bundle: Bundle, onnx_path: Path, opset: int, raw_input: RawInput | None = None
) -> None:
    """Export model.pt; with `raw_input`, the graph starts from uint8 NHWC camera pixels."""
    torch = require("torch", "train")
    require("onnxscript", "train")  # the dynamo exporter needs it; fail early with the extra
    from edge_tl.models.checkpoint import load_model

    model = load_model(bundle.artifact_path(ArtifactKind.TORCH), with_prior=True).eval()
    spec = bundle.input_spec
    example = torch.zeros(2, 3, spec.height, spec.width)
    if raw_input is not None:
        model = _with_fused_preprocessing(torch, model, spec, raw_input)
        example = torch.zeros(2, spec.height, spec.width, 3, dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=4096)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(onnx_path),
                dynamo=True,
                external_data=False,  # one self-contained file (torch 2.14 defaults to external)
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                opset_version=opset,
            )
    except Exception as exc:
        log.debug("exporter output:\n%s", captured.getvalue())
        raise ExportError(
            f"{onnx_path.name}: torch.onnx.export failed: {str(exc).splitlines()[0]}"
        ) from exc
    log.debug("exporter output:\n%s", captured.getvalue())


def _with_fused_preprocessing(torch: Any, model: Any, spec: InputSpec, raw: RawInput) -> Any:
    """Prepend cast, colour reorder, scale/normalize and NHWC→NCHW, the same arithmetic as
    `edge_tl.preprocess` (x * gain + offset per channel), so TensorRT runs it on the GPU."""
    gain, offset = normalization_constants(spec)
    reorder = raw.color_order != spec.color_order

    class RawPixels(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("gain", torch.from_numpy(gain).view(1, 3, 1, 1))
            self.register_buffer("offset", torch.from_numpy(offset).view(1, 3, 1, 1))

        def forward(self, pixels: Any) -> Any:
            # cast first: TensorRT accepts a uint8 tensor only as the input of a Cast
            x = pixels.float().permute(0, 3, 1, 2)
            if reorder:
                x = x.flip(1)
            return self.model(x * self.gain + self.offset)

    return RawPixels().eval()


def embed_metadata(bundle: Bundle, onnx_path: Path, raw_input: RawInput | None = None) -> None:
    """Labels and preprocessing inside the graph too, so a lone .onnx file still says what it is."""
    onnx = require("onnx", "train")
    model = onnx.load(str(onnx_path))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{onnx_path.name}: onnx.checker rejects the graph: {exc}") from exc
    metadata = {
        "edge_tl.version": __version__,
        "edge_tl.labels": json.dumps(bundle.labels),
        "edge_tl.input": bundle.input_spec.model_dump_json(),
        "edge_tl.backbone": bundle.manifest.model.backbone,
        "edge_tl.raw_input": raw_input.model_dump_json() if raw_input else "none",
    }
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "edge-tl"
    onnx.save(model, str(onnx_path))
