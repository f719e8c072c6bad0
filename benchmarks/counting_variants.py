"""Counting on the shared clips made into other cameras: does it hang on the line's
orientation, the traffic's direction, the frame's shape or the frame rate? Each clip is
re-encoded without loss as it is (the control: the BGR → YUV round trip alone moves counts),
mirrored, turned 90° clockwise, upside down, and at a half and a third of its frame rate (every
2nd / 3rd frame), with its ground truth made alike (turns are rigid: positions along the line
are kept; crossing frames are divided by the step), then scored by `edge-tl eval-counts` as
`counting.py` does. Detection (F1, misses, spurious counts) should stay within the control's
noise for every turn. Class accuracy means something for the control, the mirror and the
lower rates only: no camera shows vehicles on their side or upside down. The clips are
written to a temporary folder (the shared clips may not be redistributed) and deleted.

    .venv/bin/python benchmarks/counting_variants.py --bundle /tmp/veh --name NAME
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from counting import VIDEOS, eval_clip

OUT = Path(__file__).resolve().parent / "results" / "counting-variants"
Point = tuple[float, float]

Turn = tuple[Callable[[np.ndarray], np.ndarray], Callable[[Point, int, int], Point], bool]
# image turn, point turn given the original width and height, whether it swaps the sides
_AS_IS: Turn = (lambda a: a, lambda p, w, h: p, False)
_MIRROR: Turn = (lambda a: a[:, ::-1], lambda p, w, h: (w - 1 - p[0], p[1]), False)
_TURN_90: Turn = (lambda a: np.rot90(a, k=-1), lambda p, w, h: (h - 1 - p[1], p[0]), True)
_UPSIDE_DOWN: Turn = (lambda a: a[::-1], lambda p, w, h: (p[0], h - 1 - p[1]), False)
# name → (turn, keep every n-th frame)
VARIANTS: dict[str, tuple[Turn, int]] = {
    "control": (_AS_IS, 1),
    "mirrored": (_MIRROR, 1),
    "turned-90": (_TURN_90, 1),
    "upside-down": (_UPSIDE_DOWN, 1),
    "half-rate": (_AS_IS, 2),
    "third-rate": (_AS_IS, 3),
}


def variant_truth(truth: dict, name: str) -> dict:
    (_, turn_point, swaps), every = VARIANTS[name]
    width, height = truth["resolution"]["width"], truth["resolution"]["height"]
    new_w, new_h = (height, width) if swaps else (width, height)
    turned = copy.deepcopy(truth)
    line = [turn_point(tuple(p), width, height) for p in truth["line_px"]]
    turned["resolution"] = {"width": new_w, "height": new_h}
    turned["line_px"] = [list(p) for p in line]
    turned["line"] = [[x / new_w, y / new_h] for x, y in line]
    turned["fps"] = truth["fps"] / every
    for crossing in turned["crossings"] + turned.get("edge_cases", []):
        if crossing.get("frame") is not None:
            crossing["frame"] //= every
    return turned


def variant_clip(source: Path, target: Path, name: str) -> None:
    """Every kept frame turned, encoded without loss (the BGR → YUV 4:2:0 round trip remains)."""
    (turn_image, _, _), every = VARIANTS[name]
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        video = src.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate / every)
        # lossless: a lossy x264 encode of the same frames differed from run to run within one
        # process (even on 1 thread), and the overhead clip's counts with it (F1 0.860-0.880)
        stream.pix_fmt, stream.options = "yuv420p", {"qp": "0", "preset": "ultrafast"}
        for i, frame in enumerate(src.decode(video=0)):
            if i % every:
                continue
            image = np.ascontiguousarray(turn_image(frame.to_ndarray(format="bgr24")))
            if i == 0:
                stream.height, stream.width = image.shape[:2]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--note", default="")
    args, extra = parser.parse_known_args()
    truths = sorted(VIDEOS.glob("*.counts.json"))
    if not truths:
        parser.exit(1, f"no ground truth under {VIDEOS}\n")
    result: dict = {"name": args.name, "note": args.note, "bundle": str(args.bundle),
                    "args": extra, "encoding": "libx264 lossless (qp 0), yuv420p", "clips": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for truth_path in truths:
            stem = truth_path.name.removesuffix(".counts.json")
            truth = json.loads(truth_path.read_text())
            for name in VARIANTS:
                clip, turned = Path(tmp, f"{stem}-{name}.mp4"), Path(tmp, f"{stem}-{name}.json")
                variant_clip(truth_path.with_name(f"{stem}.mp4"), clip, name)
                turned.write_text(json.dumps(variant_truth(truth, name)))
                entry = eval_clip(args.bundle, clip, turned, extra, f"{stem} {name}")
                entry["clip_sha256"] = hashlib.sha256(clip.read_bytes()).hexdigest()
                result["clips"].setdefault(stem, {})[name] = entry
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
