"""Benchmark results as Markdown and PNG (latency distributions; accuracy vs latency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_tl._deps import is_available

__all__ = ["to_markdown", "write_reports", "rows", "floor_lines"]


def rows(result: dict[str, Any]) -> list[list[str]]:
    """Table rows shared by the terminal and Markdown output."""
    out = []
    for r in result["results"]:
        lat = r["latency"]
        speedup = r.get("speedup_vs_naive_torch_p50")
        out.append(
            [
                r["description"],
                str(r["batch"]),
                f"{lat['p50_ms']:.2f}",
                f"{lat['p90_ms']:.2f}",
                f"{lat['p99_ms']:.2f}",
                f"{lat['iqr_ms']:.2f}" + (" noisy" if lat["noisy"] else ""),
                f"{r['throughput_ips']:.1f}",
                f"{speedup:.2f}x" if speedup else "-",
                f"{r['x_of_floor']:.2f}x" if "x_of_floor" in r else "-",
                f"{r['load_seconds']:.2f}",
            ]
        )
    for batch, naive in result.get("naive_torch", {}).items():
        lat = naive["latency"]
        out.append(
            [
                naive["description"],
                batch,
                f"{lat['p50_ms']:.2f}",
                f"{lat['p90_ms']:.2f}",
                f"{lat['p99_ms']:.2f}",
                f"{lat['iqr_ms']:.2f}" + (" noisy" if lat["noisy"] else ""),
                f"{naive['throughput_ips']:.1f}",
                "1.00x",
                "-",
                f"{naive['load_seconds']:.2f}",
            ]
        )
    return out


HEADER = [
    "backend",
    "batch",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "IQR ms",
    "img/s",
    "vs naive torch",
    "x of floor",
    "load s",
]


def to_markdown(result: dict[str, Any]) -> str:
    system = result["system"]
    lines = [
        f"# Benchmark: {result['model']} {result['input']}",
        "",
        f"- machine: {system['cpu']} ({', '.join(system['cpu_flags']) or 'no listed SIMD flags'}), "
        f"{system['cores_usable']} usable cores, {system['memory_gb']} GB; GPU: "
        f"{system['gpu']['name'] if system['gpu'] else 'none'}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in system['versions'].items())}",
        f"- {result['config']['warmup']} warm-up + {result['config']['iterations']} timed iterations per row; "
        f"threads {result['config']['threads'] or 'library default'}; harness overhead "
        f"{result['harness_overhead_us']:.2f} µs/iteration",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(result)]
    lines += floor_lines(result)
    stage_rows = [r for r in result["results"] if "stages_ms_p50" in r]
    if stage_rows:
        lines += [
            "",
            "Per-stage medians (ms per batch, real JPEG/PNG images; copies to a GPU are inside infer):",
            "",
            "| backend | batch | decode | preprocess | infer | postprocess |",
            "|---|---|---|---|---|---|",
        ]
        for r in stage_rows:
            s = r["stages_ms_p50"]
            lines.append(
                f"| {r['description']} | {r['batch']} | {s['decode']:.2f} | {s['preprocess']:.2f} | "
                f"{s['infer']:.2f} | {s['postprocess']:.3f} |"
            )
    if result["noisy"]:
        lines += [
            "",
            f"**Noisy** (IQR > 25% of p50), ratios less trustworthy: {', '.join(result['noisy'])}",
        ]
    if result["skipped"]:
        lines += [
            "",
            "Skipped: "
            + "; ".join(
                f"{s['backend']} {s['precision']}: {s['reason']}" for s in result["skipped"]
            ),
        ]
    return "\n".join(lines) + "\n"


def floor_lines(result: dict[str, Any]) -> list[str]:
    """What "x of floor" is measured against (terminal and Markdown)."""
    floor = result.get("cpu_floor")
    if not floor:
        return []
    return [
        "",
        f"x of floor: p50 ÷ this CPU's fp32 floor, {floor['floor_ms_b1']:.2f} ms per image = "
        f"{floor['macs_per_image'] / 1e9:.3f} GMAC ÷ {floor['fp32_gmacs_per_s']:.1f} GMAC/s "
        f"({floor['method']}). int8 rows can go below 1.0: their own floor is lower (VNNI does "
        "4 int8 MACs per fp32 FMA slot).",
    ]


def write_reports(result: dict[str, Any], out_dir: Path, name: str) -> list[Path]:
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{name}.json", out_dir / f"{name}.md"]
    written[0].write_text(json.dumps(result, indent=2) + "\n")
    written[1].write_text(to_markdown(result))
    if is_available("matplotlib"):
        written += _plots(result, out_dir, name)
    return written


def accuracy_latency_figure(points: list[tuple[dict[str, Any], float]]) -> Any:
    """Batch-1 p50 against validation top-1, one labelled point per backend and precision;
    labels fan out so that points at the same place stay readable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (r, accuracy) in enumerate(sorted(points, key=lambda p: p[0]["latency"]["p50_ms"])):
        x, y = r["latency"]["p50_ms"], accuracy * 100
        ax.scatter(x, y)
        ax.annotate(
            f"{r['backend']} {r['precision']}",
            (x, y),
            xytext=(6, 10 * ((i % 3) - 1) + 4),  # alternate above, level, below
            textcoords="offset points",
            fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5},
        )
    _log_if_decades(ax, [r["latency"]["p50_ms"] for r, _ in points])
    ax.set_xlabel("batch-1 p50 latency (ms)")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title("accuracy vs latency")
    ax.margins(x=0.15, y=0.2)
    fig.tight_layout()
    return fig


def _log_if_decades(ax: Any, values: list[float]) -> None:
    """A log axis when the values span more than a decade (fp32 CPU vs TensorRT int8)."""
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 10:
        ax.set_xscale("log")


def _plots(result: dict[str, Any], out_dir: Path, name: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["results"]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(runs) + 1.5))
    ax.boxplot([r["samples_ms"] for r in runs], orientation="horizontal", showfliers=True)
    ax.set_yticks(
        range(1, len(runs) + 1), [f"{r['backend']} {r['precision']} b{r['batch']}" for r in runs]
    )
    ax.set_xlabel("latency per batch (ms)")
    _log_if_decades(ax, [v for r in runs for v in r["samples_ms"]])
    ax.set_title(f"{result['model']} latency distribution")
    fig.tight_layout()
    latency_png = out_dir / f"{name}-latency.png"
    fig.savefig(latency_png, dpi=100)
    plt.close(fig)

    points = [
        (r, result["accuracy"].get(r["precision"]))
        for r in runs
        if r["batch"] == min(x["batch"] for x in runs)
    ]
    points = [(r, a) for r, a in points if a is not None]
    written = [latency_png]
    if points:
        fig = accuracy_latency_figure(points)
        scatter_png = out_dir / f"{name}-accuracy-latency.png"
        fig.savefig(scatter_png, dpi=100)
        plt.close(fig)
        written.append(scatter_png)
    return written
