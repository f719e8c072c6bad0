"""What every command module shares: argument helpers, JSON and table output, flag parsing.

Only `edge_tl.cli` sees argparse objects or prints results; library functions take typed
arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from edge_tl.bundle import Precision
from edge_tl.errors import EdgeTLError

__all__ = [
    "PRECISIONS",
    "AddCommand",
    "add_json",
    "add_test_option",
    "add_backend_options",
    "print_json",
    "table",
    "pct",
    "precision",
    "precisions",
    "comma_list",
]

PRECISIONS = tuple(p.value for p in Precision)
AddCommand = Callable[
    [str, Callable[[argparse.Namespace], "int | None"], str], argparse.ArgumentParser
]


def add_json(parser: argparse.ArgumentParser, help: str = "print results as JSON") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_test_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--test", type=Path, action="append", default=[], metavar="DIR", help=help)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a count of images, iterations...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default="auto",
        help="auto, tensorrt, openvino, onnxruntime, torch, openvino-bf16, or a remote server: "
        "kserve://HOST:PORT/MODEL (gRPC) or kserve+http://HOST:PORT/MODEL (default: %(default)s)",
    )
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--threads", type=positive_int, default=None, help="intra-op threads")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*(str(v) for v in row))
    # a pipe or log file gets full cells instead of rich's 80-column truncation
    Console(width=None if sys.stdout.isatty() else 200).print(view)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def precision(text: str) -> Precision:
    try:
        return Precision(text)
    except ValueError:
        raise EdgeTLError(
            f"unknown precision '{text}'; choose from {', '.join(PRECISIONS)}"
        ) from None


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def precisions(text: str) -> tuple[Precision, ...]:
    """A comma-separated precision list, in order, without repeats."""
    return tuple(dict.fromkeys(precision(p) for p in comma_list(text)))
