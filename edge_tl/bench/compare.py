"""`edge-tl bench --compare A.json B.json`: what changed between two benchmark runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_tl.errors import EdgeTLError

__all__ = ["compare_runs", "REGRESSION_THRESHOLD"]

REGRESSION_THRESHOLD = 0.10  # p50 more than 10% slower is flagged


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeTLError(f"{path}: no such benchmark result") from None
    except json.JSONDecodeError as exc:
        raise EdgeTLError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or "results" not in data:
        raise EdgeTLError(f"{path}: not an edge-tl bench result (field 'results' missing)")
    return data


def compare_runs(before_path: Path, after_path: Path) -> list[dict[str, Any]]:
    before, after = _load(before_path), _load(after_path)
    keyed = {(r["backend"], r["precision"], r["batch"]): r for r in before["results"]}
    rows = []
    for r in after["results"]:
        key = (r["backend"], r["precision"], r["batch"])
        if key not in keyed:
            continue
        old, new = keyed[key]["latency"], r["latency"]
        change = new["p50_ms"] / old["p50_ms"] - 1
        rows.append(
            {
                "backend": key[0],
                "precision": key[1],
                "batch": key[2],
                "p50_before_ms": old["p50_ms"],
                "p50_after_ms": new["p50_ms"],
                "change": round(change, 4),
                "regression": change > REGRESSION_THRESHOLD,
                "noisy": bool(old.get("noisy") or new.get("noisy")),
            }
        )
    if not rows:
        raise EdgeTLError(
            f"{before_path} and {after_path} share no (backend, precision, batch) configuration"
        )
    return rows
