"""INT8 calibration sweep on a trained bundle: accuracy on its validation split per setting.

Usage: python benchmarks/int8_sweep.py BUNDLE OUT.json [SUBSTRING ...]  (settings to run)
Each setting re-quantizes fp32.onnx (the bundle's copy is used, never modified) and scores
int8.onnx on ONNX Runtime's reference Q/DQ path against fp32 on the same images.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from edge_tl.bundle import Precision
from edge_tl.export import ExportOptions, export_bundle
from edge_tl.export.precision import CalibrationMethod

SETTINGS = {
    "percentile99.999 auto-exclude rest-fp16 256 (default)": ExportOptions(),
    "percentile99.99 auto-exclude rest-fp16 256": ExportOptions(calib_percentile=99.99),
    "percentile99.99 auto-exclude rest-fp32 256": ExportOptions(
        calib_percentile=99.99, int8_rest_fp16=False
    ),
    "percentile99.99 no-exclude rest-fp16 256": ExportOptions(
        calib_percentile=99.99, int8_exclude=()
    ),
    "percentile99.999 auto-exclude rest-fp16 512": ExportOptions(calib_images=512),
    "minmax auto-exclude rest-fp16 256": ExportOptions(calib_method=CalibrationMethod.MINMAX),
    "entropy auto-exclude rest-fp16 256": ExportOptions(calib_method=CalibrationMethod.ENTROPY),
}


def main(bundle: Path, out: Path, only: list[str]) -> None:
    rows = []
    for name, options in SETTINGS.items():
        if only and not any(word in name for word in only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "bundle"
            shutil.copytree(bundle, work)
            t0 = time.perf_counter()
            reports = export_bundle(work, _int8_only(options))
            seconds = time.perf_counter() - t0
        report = reports[0]
        fp32_top1 = json.loads((bundle / "manifest.json").read_text())["metrics"]["fp32"]["top1"]
        row = {
            "setting": name,
            "top1": report.top1,
            "fp32_top1": fp32_top1,
            "drop_points": round((fp32_top1 - report.top1) * 100, 2),
            "agreement_fp32": report.agreement_fp32,
            "images": report.images,
            "seconds": round(seconds, 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    out.write_text(json.dumps(rows, indent=2) + "\n")


def _int8_only(options: ExportOptions) -> ExportOptions:
    from dataclasses import replace

    return replace(options, precisions=(Precision.INT8,), latency_iterations=5)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
