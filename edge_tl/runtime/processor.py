"""What gets classified in one stream, and the events it produces (see `events.py`).

- `frame`: the whole frame, with temporal smoothing (exponential moving average of the full
  class-probability vector);
- `roi`: fixed regions of interest (normalized x, y, w, h), each smoothed on its own;
- `motion` (the traffic default): background subtraction → blobs → IoU tracker → each track
  classified a few times, its probability vectors averaged → one count per track when it
  crosses the counting line. With `classify = "at_line"` (the default) a track's crops are
  kept until it crosses the line and classified then: tracks that never cross cost no
  inference (measured against classifying every track: 27 % fewer crops on the highway clip,
  40 % on the overhead one; and once counts stopped waiting for votes, classifying at the
  crossing instead of a few frames ahead of it: another 12 % and 49 %, counts identical).
  This holds from a stream's first frame: classifying every track until the drift check's
  first verdict made each new camera's first seconds its busiest (10 cameras starting
  together built a 1.7 s backlog that took 15 s to drain on 2 cores); without it the verdict
  comes later (highway frame 115 → 264, overhead 43 → 108), crops per pass fall by 22 % and
  14 %, counts are identical on both clips, and the prior gate (`_prior_active`) covers the
  vehicles counted before the verdict.
  A classification's vote is taken `VOTE_DELAY_FRAMES` frames after its crop was submitted
  (waiting only if it is not done by then): a track that crosses is counted at once (its
  frame, box and place among the counts) and its event goes out once its last vote is in
  (`finish()` takes the rest at the end). Waiting at the crossing itself stalled a camera's
  thread ~50-300 ms per vehicle under load (8 live-read cameras: 20 % of frames skipped with
  the box 15 % idle). The delay is counted in frames, not time, so what a stream decides
  (votes, the drift verdict, the prior) is the same however fast inference runs: eval-counts
  on a file gives what a live camera would.
Every image goes through the shared BatchScheduler, so streams batch together.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from edge_tl.records import ScoreReference
from edge_tl.runtime.backends.kserve import RemoteUnavailable
from edge_tl.runtime.camera_motion import CameraMotion
from edge_tl.runtime.classify import Prediction, fuse
from edge_tl.runtime.config import StreamConfig
from edge_tl.runtime.drift import DriftMonitor
from edge_tl.runtime.events import camera_event, drift_event, make_event
from edge_tl.runtime.frame_rate import FrameRate
from edge_tl.runtime.harvest import Harvester
from edge_tl.runtime.motion import Box, MotionDetector
from edge_tl.runtime.scheduler import BatchScheduler
from edge_tl.runtime.side_by_side import Line, split_at_line, straddles
from edge_tl.runtime.sources import Frame
from edge_tl.runtime.tracker import IouTracker, Track, overlap

__all__ = ["StreamProcessor", "UNCLASSIFIED", "VOTE_DELAY_FRAMES"]

# the class of a vehicle counted while no classification could be had (remote server down)
UNCLASSIFIED = "unclassified"

# a counted box and a new crossing box sharing this much of the smaller one are one vehicle;
# swept 0.3-1.0 on the overhead clip: 0.3-0.5 also merge neighbours (real crossings lost),
# 0.85 and above let split blobs count twice; 0.7 kept every real crossing but one
RECOUNT_OVERLAP = 0.7

# a blob counts as several vehicles when it showed them side by side on the line in the frame
# its centre crossed, or in this many frames before: a vehicle's own mask can break for one
# frame (a synthetic checkerboard's did, under one state of the background model's random
# sampling), while real pairs lie across the line for several
SIDE_BY_SIDE_FRAMES = 2

# frames between submitting a crop and taking its vote: 0.5 s at 30 fps. A CPU box near its
# capacity keeps crops in the inference queue that long at times; with 3 frames the streams
# of 8 live cameras waited for nearly every vote (71 % of frames analysed; 84 % with 15)
VOTE_DELAY_FRAMES = 15

# under this rate the tracker also pairs boxes by distance (IouTracker.update) and keeps a track's
# first side of the line: measured at 10 and 15 fps they found crossings, at 30 fps only
# fragments. Between 15 and 20 fps, not at either: 20 fps is a common camera rate, and a rate read
# from jittery timestamps would flip the tracker's rule from frame to frame
DISTANCE_MATCH_FPS = 18.0


class StreamProcessor:
    """Turns frames of one stream into events; call `process(frame)` for each frame."""

    def __init__(
        self,
        config: StreamConfig,
        scheduler: BatchScheduler,
        labels: Sequence[str],
        top_k: int = 3,
        reference: ScoreReference | None = None,
    ) -> None:
        self.config, self.scheduler, self.labels = config, scheduler, list(labels)
        # without a reference (bundles trained before it was stored) drift is not checked
        self.use_reference(reference)
        self.top_k = top_k
        self.counts: dict[str, int] = dict.fromkeys(self.labels, 0)
        self._smoothed: dict[int, np.ndarray] = {}
        self._detector = MotionDetector(config.motion) if config.mode == "motion" else None
        self._camera = (
            CameraMotion(config.camera_motion)
            if config.mode == "motion" and config.camera_motion.enabled
            else None
        )
        self._tracker = IouTracker()
        self._counted: list[tuple[int, Box]] = []  # (frame, box) of recent counts
        self._rate = FrameRate()  # turns the settings in seconds into frames
        self._vehicles: list[Box] = []  # the last frame's moving blobs
        self._has_prior = False  # the bundle's graphs output an ImageNet prior
        self.remote_down = False  # the last classification found the remote server down
        self._analysis_cpu_s, self._frames_seen = 0.0, 0
        self._grey_cache: tuple[tuple[int, int], tuple[np.ndarray, float]] | None = None
        # (track, its classification, the crop, the frame it was submitted in), in that order
        self._inflight: list[tuple[Track, Future[Prediction], np.ndarray, int]] = []
        # counted (track, the frame it crossed in, its box there), waiting for their classes
        self._counting: list[tuple[Track, Frame, Box]] = []
        self._split_from: dict[int, int] = {}  # a side-by-side vehicle's id: its blob's track
        # per track across the line: the most vehicles seen side by side in it (boxes, crops),
        # in how many frames, the last of them
        self._beside: dict[int, tuple[list[Box], list[np.ndarray], int, int]] = {}
        self._last: Prediction | None = None  # the latest prediction collected
        self.harvester = (
            Harvester(config.harvest, config.name, config.harvest_crops, config.harvest_max_mb)
            if config.harvest is not None and config.mode == "motion"
            else None
        )

    def use_reference(self, reference: ScoreReference | None) -> None:
        """A reloaded bundle's drift reference: the window starts afresh against it."""
        self.drift = (
            DriftMonitor(reference, self.labels, self.config.drift)
            if reference is not None and self.config.drift.enabled
            else None
        )

    def cpu_ms_per_frame(self) -> dict[str, float]:
        """This stream thread's CPU per frame in `process` (camera motion, motion detection,
        tracking, crops, events; inference runs on the scheduler's thread): for benchmarks."""
        return {"analysis": self._analysis_cpu_s * 1e3 / max(self._frames_seen, 1)}

    def process(self, frame: Frame) -> Iterator[dict[str, Any]]:
        self._frames_seen += 1
        self._rate.observe(frame.index, frame.media_ms)
        cpu0 = time.thread_time()
        events = list(self._process(frame))
        # the wait for the scheduler's classifications costs this thread no CPU
        self._analysis_cpu_s += time.thread_time() - cpu0
        yield from events

    def _process(self, frame: Frame) -> Iterator[dict[str, Any]]:
        if self._detector is not None:
            yield from self._motion(frame, self._detector)
        else:
            yield from self._regions(frame)
        if self.drift is not None and (status := self.drift.changed()) is not None:
            yield drift_event(self.config.name, frame, status)

    def _classify(self, crops: list[np.ndarray]) -> list[Prediction] | None:
        """The crops' predictions, or None while a remote inference server is down: the stream
        keeps tracking and counting, and says so (remote_down) instead of failing."""
        results = [self._result(f) for f in [self.scheduler.submit(c) for c in crops]]
        predictions = [p for p in results if p is not None]
        return predictions if len(predictions) == len(results) else None

    def _result(self, future: Future[Prediction]) -> Prediction | None:
        """A classification's prediction (waiting for it), observed for the prior and drift;
        None when the remote server is down (remote_down says so until one succeeds)."""
        try:
            prediction = future.result()
        except RemoteUnavailable:
            self.remote_down = True
            return None
        self.remote_down = False
        self._has_prior = self._has_prior or prediction.prior is not None
        if self.drift is not None:
            self.drift.observe(prediction.scores)
        return prediction

    def _submit(self, track: Track, crop: np.ndarray, frame_index: int) -> None:
        """Classify `track`'s crop without waiting: the stream goes on to its next frames and
        takes the vote VOTE_DELAY_FRAMES later."""
        crop = crop.copy()  # the decoder may reuse the frame's buffer
        self._inflight.append((track, self.scheduler.submit(crop), crop, frame_index))

    def _collect(self, frame_index: int | None = None) -> None:
        """The votes of crops submitted VOTE_DELAY_FRAMES or more before `frame_index` (all,
        without it), in the order they were submitted, waiting for any not done yet."""
        due = len(self._inflight)
        if frame_index is not None:
            due = next(
                (i for i, entry in enumerate(self._inflight)
                 if entry[3] > frame_index - VOTE_DELAY_FRAMES),
                due,
            )  # fmt: skip
        collected, self._inflight = self._inflight[:due], self._inflight[due:]
        for track, future, crop, _ in collected:
            prediction = self._result(future)
            if prediction is None:
                continue
            track.vote(prediction.scores, prediction.prior)
            if self.harvester is not None:
                track.crops.append(crop)
            self._last = prediction

    def finish(self) -> Iterator[dict[str, Any]]:
        """The counts still waiting for their votes when the stream ends."""
        if self._counting:
            self._collect()
            yield from self._counted_events()

    def _regions(self, frame: Frame) -> Iterator[dict[str, Any]]:
        height, width = frame.image.shape[:2]
        regions: list[Box] = (
            [(0, 0, width, height)]
            if self.config.mode == "frame"
            else [
                (round(x * width), round(y * height), round(w * width), round(h * height))
                for x, y, w, h in self.config.rois
            ]
        )
        crops = [frame.image[y : y + h, x : x + w] for x, y, w, h in regions]
        predictions = self._classify(crops)
        if predictions is None:
            return
        for index, (box, prediction) in enumerate(zip(regions, predictions, strict=True)):
            extra = {"roi": index} if self.config.mode == "roi" else {}
            yield self._event(
                "class", frame, self._smooth(index, prediction), box, prediction, **extra
            )

    def _smooth(self, key: int, prediction: Prediction) -> np.ndarray:
        alpha = self.config.smoothing
        previous = self._smoothed.get(key)
        current = self._final(prediction.scores, prediction.prior)
        smoothed = current if previous is None else alpha * current + (1 - alpha) * previous
        self._smoothed[key] = smoothed
        return smoothed

    def _motion(self, frame: Frame, detector: MotionDetector) -> Iterator[dict[str, Any]]:
        config = self.config
        fps = self._rate.observed_fps
        if self._camera is not None:
            self._camera.follow_rate(fps)
            camera = self._camera.update_grey(
                *self._grey(frame, config.camera_motion.width), self._vehicles
            )
            if camera.started:
                yield camera_event(config.name, frame, camera)
            if camera.moving and config.camera_motion.pause_counting:
                self._tracker.clear()  # boxes and line sides mean nothing while it moves
                self._beside.clear()
                self._vehicles = []
                return
            if camera.settled and config.camera_motion.relearn:
                detector.reset()  # a new view: learn its background from scratch
        detector.follow_rate(fps)
        self._vehicles = detector.detect_grey(*self._grey(frame, config.motion.width))
        slow = fps < DISTANCE_MATCH_FPS
        # fast vehicles outrun their own overlap between frames at 10-15 fps (IouTracker.update)
        self._tracker.match_by_distance = slow
        tracks = self._tracker.update(self._vehicles, frame.index)
        self._collect(frame.index)
        out = Counter(entry[0].id for entry in self._inflight)  # classifications pending
        to_classify = [
            t for t in tracks
            if t.hits >= config.min_hits
            and not t.counted  # its class was decided by the crops it had when it crossed
            and t.classified + out[t.id] + len(t.deferred) < config.max_classifications
            and (frame.index - t.first_frame) % config.classify_every == 0
        ]  # fmt: skip
        height, width = frame.shape
        line_px = tuple((x * width, y * height) for x, y in config.line)
        for track in tracks:
            if track.hits >= config.min_hits and not track.counted:
                self._look_beside(track, frame, line_px, detector)
        # at 10-15 fps a vehicle first seen just before the line can be past it when its track is
        # confirmed: its side is kept from its first sighting (10 fps: 3 more crossings found on
        # the overhead clip, none more spurious). At 30 fps the wait had been filtering
        # fragments born on the line (8 more spurious counts over the variants: counting.md)
        crossing = [
            t for t in tracks
            if (t.hits >= config.min_hits or slow)
            and IouTracker.check_crossing(t, line_px, confirmed=t.hits >= config.min_hits)
        ]  # fmt: skip
        for track in crossing:  # a track about to be counted must have at least one vote
            if (
                track.votes is None
                and track.id not in out
                and not track.deferred
                and track not in to_classify
            ):
                to_classify.append(track)
        # at_line: crops wait until their vehicle crosses (its count waits for their votes, the
        # stream does not): vehicles that only pass near the line cost nothing
        defer = config.classify == "at_line"
        due = {t.id for t in tracks if not defer or t in crossing}
        for track in to_classify:
            crop = self._crop(frame, track.box)
            if track.id in due:
                self._submit(track, crop, frame.index)
            else:
                track.deferred.append(crop.copy())  # the decoder may reuse the frame's buffer
        for track in tracks:
            if track.deferred and track.id in due:
                for crop in track.deferred:
                    self._submit(track, crop, frame.index)
                track.deferred = []
        for track in crossing:
            if not self._recounted(track, frame.index):
                self._count(track, frame)
        if self._counting:
            # the prior's use is decided on every classification made so far
            if self.drift is not None and (status := self.drift.changed()) is not None:
                yield drift_event(config.name, frame, status)
            yield from self._counted_events()
        self._expire(frame.index)

    def _expire(self, frame_index: int) -> None:
        """Drop the tracks not seen for `max_missed_s`, in frames at the stream's rate."""
        self._tracker.max_missed = self._rate.frames(self.config.max_missed_s)
        for track in self._tracker.expire(frame_index):
            self._beside.pop(track.id, None)

    def _look_beside(
        self, track: Track, frame: Frame, line_px: Line, detector: MotionDetector
    ) -> None:
        """While `track`'s blob lies across the line, keep the frame that showed the most
        vehicles side by side in it (its box first, then the others' boxes and crops): a pair
        seen apart for a few frames may look like one just as its centre crosses."""
        if detector.mask is None or not straddles(line_px, track.box):
            return
        parts = split_at_line(
            detector.mask, detector.mask_scale, line_px, track.box, self.config.split_min_width
        )
        if len(parts) < 2:
            return
        kept, crops, seen, _ = self._beside.get(track.id, ([], [], 0, 0))
        if len(parts) >= len(kept):
            kept, crops = parts, [self._crop(frame, box).copy() for box in parts[1:]]
        self._beside[track.id] = (kept, crops, seen + 1, frame.index)

    def _count(self, track: Track, frame: Frame) -> None:
        """Queue `track`'s count. A blob that held vehicles side by side on the line counts
        each: the track with its own part's box, the others as new tracks classified from
        their part of the frame that showed them apart."""
        parts, crops, seen, last = self._beside.pop(track.id, ([track.box], [], 0, -1))
        if seen < SIDE_BY_SIDE_FRAMES and last != frame.index:
            parts, crops = [track.box], []
        self._counting.append((track, frame, parts[0]))
        # each vehicle told apart is counted: its own box guards it against a recount too
        if len(parts) > 1:
            self._counted.extend((frame.index, box) for box in parts)
        for box, crop in zip(parts[1:], crops, strict=True):
            part = self._tracker.new_track(box, frame.index)
            part.counted = True
            self._split_from[part.id] = track.id
            self._submit(part, crop, frame.index)
            self._counting.append((part, frame, box))

    def _counted_events(self) -> Iterator[dict[str, Any]]:
        """Count events, in crossing order, of the tracks whose classifications are all in
        (stamped with the frame they crossed in); the others wait for a later frame."""
        waiting = {entry[0].id for entry in self._inflight}
        while self._counting and self._counting[0][0].id not in waiting:
            track, frame, box = self._counting.pop(0)
            scores = track.mean_scores()
            if scores is None:  # never classified: the remote server was down all along
                yield self._unclassified(frame, track.id, box)
                continue
            scores = self._final(scores, track.mean_prior())
            label = self.labels[int(scores.argmax())]
            self.counts[label] += 1
            extra = {}
            if (parent := self._split_from.pop(track.id, None)) is not None:
                extra["split_from"] = parent
            event = self._event(
                "count",
                frame,
                scores,
                box,
                self._last,
                track_id=track.id,
                votes=track.classified,
                counts=dict(self.counts),
                **extra,
            )
            if self.harvester is not None:
                self._harvest(self.harvester, track, event)
            yield event

    def _grey(self, frame: Frame, width: int) -> tuple[np.ndarray, float]:
        """The frame shrunk and made grey once for motion detection and camera motion (both
        at 320 px unless configured apart)."""
        if self._grey_cache is None or self._grey_cache[0] != (frame.index, width):
            grey = frame.small_grey(width)
            self._grey_cache = ((frame.index, width), grey)
        return self._grey_cache[1]

    def _unclassified(self, frame: Frame, track_id: int, box: Box) -> dict[str, Any]:
        """A vehicle that crossed while no classification could be had: counted, not guessed."""
        self.counts[UNCLASSIFIED] = self.counts.get(UNCLASSIFIED, 0) + 1
        uniform = np.full(len(self.labels), 1.0 / len(self.labels), np.float32)
        event = self._event(
            "count", frame, uniform, box, None, track_id=track_id, votes=0, remote_down=True
        )
        event.update({"class": UNCLASSIFIED, "score": 0.0, "top": [], "counts": dict(self.counts)})
        return event

    def _harvest(self, harvester: Harvester, track: Track, event: dict[str, Any]) -> None:
        record = {
            "first_frame": track.first_frame,
            "last_frame": track.last_frame,
            "count_frame": event["frame"],
            "box": event["box"],
            "class": event["class"],
            "score": event["score"],
        }
        event["harvest_id"] = harvester.save(track.id, track.crops, record)
        track.crops = []

    def _prior_active(self, scores: np.ndarray | None = None) -> bool:
        """Whether the prior is fused: always, never, or (`auto`) while the stream drifts.
        Until the drift check has its first verdict, `scores` (a track's or a frame's) is
        judged on its own: below the validation 10th-percentile confidence, the head is
        unsure as it is on unseen cameras. Otherwise the class of the first vehicles would
        hang on whether the verdict lands a frame before or after they cross (measured:
        highway, two cars at frames 126 and 128 named car or minibus by a change of ±1 grey
        level that moved the verdict from frame 126 to 145)."""
        mode, drift = self.config.prior, self.drift
        if mode != "auto" or drift is None:
            return mode == "always"
        if drift.has_verdict:
            return drift.drifting
        return scores is not None and float(scores.max()) < drift.reference.low_confidence

    def _final(self, scores: np.ndarray, prior: np.ndarray | None) -> np.ndarray:
        """The head's scores, fused with the ImageNet prior when it is active."""
        if prior is None or not self._prior_active(scores):
            return scores
        return fuse(scores, prior, self.config.prior_weight)

    def _recounted(self, track: Track, frame_index: int) -> bool:
        """Whether `track` is a fragment of a vehicle counted moments ago (a blob that split,
        a track that restarted): most of the smaller of the two boxes lies in the other.
        Records the count otherwise."""
        window = self._rate.frames(self.config.recount_s)
        self._counted = [(f, b) for f, b in self._counted if frame_index - f <= window]
        if any(overlap(track.box, box) >= RECOUNT_OVERLAP for _, box in self._counted):
            return True
        self._counted.append((frame_index, track.box))
        return False

    def _crop(self, frame: Frame, box: Box) -> np.ndarray:
        x, y, w, h = box
        pad_x, pad_y = round(w * self.config.crop_padding), round(h * self.config.crop_padding)
        height, width = frame.shape
        x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
        x1, y1 = min(width, x + w + pad_x), min(height, y + h + pad_y)
        return frame.crop(x0, y0, x1, y1)

    def _event(
        self,
        kind: str,
        frame: Frame,
        scores: np.ndarray,
        box: Box,
        prediction: Prediction | None,
        **extra: Any,
    ) -> dict[str, Any]:
        stage_ms = prediction.timings_ms if prediction is not None else None
        if self._has_prior and self._prior_active():
            extra["prior"] = True
        return make_event(
            kind, self.config.name, frame, scores, self.labels, box, self.top_k, stage_ms, **extra
        )
