"""Counting on the shared clips made into other cameras: does it hang on the line's orientation,
the traffic's direction, the frame's shape, the frame rate, the resolution, the light or a
shaking mast? Each clip is re-encoded without loss as it is (the control: the BGR → YUV round
trip alone moves counts), mirrored, turned 90° clockwise, upside down, at a half and a third of
its frame rate (every 2nd / 3rd frame), at half its size, dim (dusk: 40 % of the light plus
sensor noise) and shaky (the view jumps up to 3 px each way every frame). Its ground truth is
made alike: turns keep positions along the line, crossing frames and `fps` are divided by the
frame step (the match window stays 0.5 s), positions and the matcher's 80 px (`match_px`) are
halved with the size. Each is scored by `edge-tl
eval-counts` as `counting.py` does. Detection (F1, misses, spurious counts) should stay within
the control's noise for every variant. Class accuracy means something for all but the turned
and upside-down clips: no camera shows vehicles on their side or upside down. The clips are
written to a temporary folder (the shared clips may not be redistributed) and deleted.

    .venv/bin/python benchmarks/counting_variants.py --bundle /tmp/veh --name NAME [--only dim]

Your own camera: `--truth my-camera.counts.json --out results/` (the format of `eval-counts`).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from counting import VIDEOS, eval_clip

from edge_tl.counting import MAX_POSITION_PX

OUT = Path(__file__).resolve().parent / "results" / "counting-variants"
Point = tuple[float, float]


@dataclass(frozen=True)
class Variant:
    image: Callable[[np.ndarray, int], np.ndarray] = lambda a, i: a  # frame, its index
    point: Callable[[Point, int, int], Point] = lambda p, w, h: p  # given the original w, h
    every: int = 1  # keep every n-th frame
    scale: float = 1.0  # of lengths (positions along the line)


def _half(a: np.ndarray, index: int) -> np.ndarray:
    # even sides (YUV 4:2:0 needs them): at most a pixel off half for odd halves
    size = (a.shape[1] // 4 * 2, a.shape[0] // 4 * 2)
    return cv2.resize(a, size, interpolation=cv2.INTER_AREA)


def _dim(a: np.ndarray, index: int) -> np.ndarray:
    # dusk: 40 % of the light, and the sensor's gain noise on top, new in every frame
    noise = np.random.default_rng(index).normal(0, 3, a.shape)
    return np.clip(a * 0.4 + noise, 0, 255).astype(np.uint8)


def _shaky(a: np.ndarray, index: int) -> np.ndarray:
    # a pole in the wind: the view jumps up to 3 px (at 640 px across) each way, every frame
    dx, dy = np.random.default_rng(index).uniform(-3, 3, 2) * a.shape[1] / 640
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(a, matrix, (a.shape[1], a.shape[0]), borderMode=cv2.BORDER_REPLICATE)


VARIANTS: dict[str, Variant] = {
    "control": Variant(),
    "mirrored": Variant(lambda a, i: a[:, ::-1], lambda p, w, h: (w - 1 - p[0], p[1])),
    "turned-90": Variant(lambda a, i: np.rot90(a, k=-1), lambda p, w, h: (h - 1 - p[1], p[0])),
    "upside-down": Variant(lambda a, i: a[::-1], lambda p, w, h: (p[0], h - 1 - p[1])),
    "half-rate": Variant(every=2),
    "third-rate": Variant(every=3),
    "half-size": Variant(_half, lambda p, w, h: (p[0] / 2, p[1] / 2), scale=0.5),
    "dim": Variant(_dim),
    "shaky": Variant(_shaky),
}


def variant_truth(truth: dict, name: str) -> dict:
    variant = VARIANTS[name]
    width, height = truth["resolution"]["width"], truth["resolution"]["height"]
    new_h, new_w = variant.image(np.zeros((height, width, 3), np.uint8), 0).shape[:2]
    made = copy.deepcopy(truth)
    line = [variant.point(tuple(p), width, height) for p in truth["line_px"]]
    made["resolution"] = {"width": new_w, "height": new_h}
    made["line_px"] = [list(p) for p in line]
    made["line"] = [[x / new_w, y / new_h] for x, y in line]
    made["fps"] = truth["fps"] / variant.every
    if variant.scale != 1:  # the match window's pixels are the file's: a smaller frame, fewer
        made["match_px"] = truth.get("match_px", MAX_POSITION_PX) * variant.scale
    for crossing in made["crossings"] + made.get("edge_cases", []):
        if crossing.get("frame") is not None:
            crossing["frame"] //= variant.every
        if crossing.get("pos_px_along_line") is not None:
            crossing["pos_px_along_line"] *= variant.scale
    return made


def variant_clip(source: Path, target: Path, name: str) -> None:
    """Every kept frame made over and encoded without loss (but for BGR → YUV 4:2:0)."""
    variant = VARIANTS[name]
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        video = src.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate / variant.every)
        # lossless: a lossy x264 encode of the same frames differed from run to run within one
        # process (even on 1 thread), and the overhead clip's counts with it (F1 0.860-0.880)
        stream.pix_fmt, stream.options = "yuv420p", {"qp": "0", "preset": "ultrafast"}
        for i, frame in enumerate(src.decode(video=0)):
            if i % variant.every:
                continue
            image = np.ascontiguousarray(variant.image(frame.to_ndarray(format="bgr24"), i))
            if i == 0:
                stream.height, stream.width = image.shape[:2]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--note", default="")
    parser.add_argument("--only", default="", help="comma-separated variants (default: all)")
    parser.add_argument(
        "--truth",
        type=Path,
        action="append",
        help="a ground truth of your own clip (its `video` beside it; repeatable; default: the "
        "shared clips)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="results folder")
    args, extra = parser.parse_known_args()
    if unknown := set(filter(None, args.only.split(","))) - set(VARIANTS):
        parser.error(f"--only: unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")
    truths = args.truth or sorted(VIDEOS.glob("*.counts.json"))
    if not truths:
        parser.exit(1, f"no ground truth under {VIDEOS}\n")
    result: dict = {"name": args.name, "note": args.note, "bundle": str(args.bundle),
                    "args": extra, "encoding": "libx264 lossless (qp 0), yuv420p", "clips": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for truth_path in truths:
            stem = truth_path.name.removesuffix(".counts.json")
            truth = json.loads(truth_path.read_text())
            source = truth_path.with_name(truth.get("video") or f"{stem}.mp4")
            if not source.is_file():
                parser.exit(1, f"{truth_path}: its video {source} is not there\n")
            for name in args.only.split(",") if args.only else VARIANTS:
                clip, turned = Path(tmp, f"{stem}-{name}.mp4"), Path(tmp, f"{stem}-{name}.json")
                variant_clip(source, clip, name)
                turned.write_text(json.dumps(variant_truth(truth, name)))
                entry = eval_clip(args.bundle, clip, turned, extra, f"{stem} {name}")
                entry["clip_sha256"] = hashlib.sha256(clip.read_bytes()).hexdigest()
                result["clips"].setdefault(stem, {})[name] = entry
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
