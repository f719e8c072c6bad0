"""The counting benchmark: a clip's hand-checked line crossings against the count events of
the same motion pipeline `serve` runs. Torch-free.

- `truth`: the ground-truth file (`CLIP.counts.json`) and positions along its line;
- `score`: count events matched to crossings, and the metrics;
- `gallery`: a picture of every miss, spurious count and wrong class, to see why;
- `run`: `eval-counts`, the pipeline run on a clip and scored.
"""

from edge_tl.counting.run import evaluate_counts
from edge_tl.counting.score import (
    MAX_FRAMES,
    MAX_POSITION_PX,
    MAX_SECONDS,
    CountedEvent,
    CountMatch,
    MatchWindow,
    count_events,
    count_metrics,
    match_counts,
)
from edge_tl.counting.truth import (
    Crossing,
    EdgeCase,
    GroundTruth,
    load_ground_truth,
    position_along,
)

__all__ = [
    "Crossing",
    "EdgeCase",
    "GroundTruth",
    "load_ground_truth",
    "position_along",
    "CountMatch",
    "CountedEvent",
    "count_events",
    "match_counts",
    "count_metrics",
    "evaluate_counts",
    "MAX_FRAMES",
    "MAX_POSITION_PX",
    "MAX_SECONDS",
    "MatchWindow",
]
