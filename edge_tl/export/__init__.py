"""Export: PyTorch → precision-explicit ONNX graphs (and, later, TensorRT engines)."""

from edge_tl.export.onnx import ExportReport, export_fp32

__all__ = ["ExportReport", "export_fp32"]
