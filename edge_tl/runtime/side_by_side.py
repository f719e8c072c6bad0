"""Vehicles side by side in one blob, told apart where it crosses the counting line.

Dilation joins a vehicle's broken mask into one blob, and with it neighbours that drive side by
side in dense traffic (a car and an auto-rickshaw, two cars leaving a zoom): one track, one
count. Along the counting line the foreground of such a blob still comes in separate runs, one
per vehicle, with road between them; a single vehicle is one run, or one wide run and thin
strips (the background model marks a moving vehicle's outline more than its plain roof).
So a crossing blob counts once per run of foreground at least `min_width` wide, sampled in
the detector's mask before dilation, in the frame its centre crosses or in the frames before
while it lies across the line (the stream processor keeps the best of them).
"""

from __future__ import annotations

import math

import numpy as np

from edge_tl.runtime.motion import DILATION_PX, Box
from edge_tl.runtime.tracker import along, crossed

__all__ = ["Line", "split_at_line", "straddles", "foreground_runs"]

Line = tuple[tuple[float, float], tuple[float, float]]

BAND_PX = 2  # mask rows either side of the line that count as on it
# road this wide (mask pixels) or less inside a run does not separate two vehicles
MAX_GAP_PX = 2


def foreground_runs(profile: np.ndarray, max_gap: int = MAX_GAP_PX) -> list[tuple[int, int]]:
    """(first, last) indexes of the runs of True in `profile`, gaps of up to `max_gap`
    False values closed."""
    on = np.flatnonzero(profile)
    if not len(on):
        return []
    breaks = np.flatnonzero(np.diff(on) > max_gap + 1)
    starts = np.concatenate(([on[0]], on[breaks + 1]))
    ends = np.concatenate((on[breaks], [on[-1]]))
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def _corners(box: Box) -> tuple[tuple[int, int], ...]:
    x, y, w, h = box
    return (x, y), (x + w, y), (x, y + h), (x + w, y + h)


def straddles(line_px: Line, box: Box) -> bool:
    """Whether `box` lies across the line (corners on both sides of it)."""
    sides = [crossed(line_px, corner) for corner in _corners(box)]
    return min(sides) < 0 < max(sides)


def split_at_line(
    mask: np.ndarray, scale: float, line_px: Line, box: Box, min_width: float
) -> list[Box]:
    """`box` (full-frame pixels) as one box per vehicle side by side on the line, widest
    first; `[box]` when it holds one. `mask`: the detector's foreground at `scale` of the
    frame; `min_width`: the narrowest vehicle, as a share of the mask's longer side."""
    (x1, y1), (x2, y2) = line_px
    dx, dy = x2 - x1, y2 - y1
    length = math.hypot(dx, dy)
    if length == 0 or min_width <= 0:
        return [box]
    fractions = [along(line_px, corner) for corner in _corners(box)]
    t0, t1 = max(0.0, min(fractions)), min(1.0, max(fractions))
    samples = math.ceil((t1 - t0) * length * scale) + 1
    if t1 <= t0 or samples < 2:
        return [box]
    t = np.linspace(t0, t1, samples)
    offsets = np.arange(-BAND_PX, BAND_PX + 1)[:, None]  # across the line, in mask pixels
    px = np.rint((x1 + t * dx) * scale - offsets * dy / length).astype(int)
    py = np.rint((y1 + t * dy) * scale + offsets * dx / length).astype(int)
    inside = (px >= 0) & (py >= 0) & (px < mask.shape[1]) & (py < mask.shape[0])
    on = np.zeros(px.shape, bool)
    on[inside] = mask[py[inside], px[inside]] > 0
    step = (t1 - t0) / (samples - 1)  # line fraction per sample
    runs = [
        (t0 + a * step, t0 + b * step)
        for a, b in foreground_runs(on.any(axis=0))
        if (b - a + 1) >= min_width * max(mask.shape)
    ]
    if len(runs) < 2:
        return [box]
    runs.sort(key=lambda run: run[0] - run[1])  # widest first
    return [_part(mask, scale, line_px, box, start, end) for start, end in runs]


def _part(mask: np.ndarray, scale: float, line_px: Line, box: Box, start: float, end: float) -> Box:
    """The part of `box` holding the foreground that projects onto the line between fractions
    `start` and `end` (one vehicle's run), grown by the reach of the detector's dilation as the
    detector's own boxes are, within `box`: the crop shows this vehicle, not the whole blob.
    Exact for a line at any angle: a diagonal line's strip is a slanted band of the box."""
    x, y, w, h = box
    x0, y0 = int(x * scale), int(y * scale)
    rows, cols = np.nonzero(mask[y0 : math.ceil((y + h) * scale), x0 : math.ceil((x + w) * scale)])
    # each foreground pixel's centre in full-frame pixels, and where it projects onto the line
    fractions = along(line_px, ((x0 + cols + 0.5) / scale, (y0 + rows + 0.5) / scale))
    inside = (fractions >= start) & (fractions <= end)
    if not inside.any():
        return box
    rows, cols = rows[inside], cols[inside]
    left = max(x, round((x0 + cols.min() - DILATION_PX) / scale))
    top = max(y, round((y0 + rows.min() - DILATION_PX) / scale))
    right = min(x + w, round((x0 + cols.max() + 1 + DILATION_PX) / scale))
    bottom = min(y + h, round((y0 + rows.max() + 1 + DILATION_PX) / scale))
    return left, top, max(1, right - left), max(1, bottom - top)
