"""Export: PyTorch → precision-explicit ONNX graphs (fp32, fp16, int8 Q/DQ)."""

from edge_tl.export.pipeline import ExportOptions, PrecisionReport, export_bundle

__all__ = ["ExportOptions", "PrecisionReport", "export_bundle"]
