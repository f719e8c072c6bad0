"""One inference thread per backend that batches crops and frames from every stream:
up to `max_batch` images, or whatever arrived within `max_wait_ms` of the first one."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from edge_tl.runtime.classify import Classifier, Prediction

__all__ = ["BatchScheduler", "BatchStats"]

log = logging.getLogger(__name__)


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    infer_ms_total: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.images / self.batches if self.batches else 0.0


class BatchScheduler:
    def __init__(
        self, classifier: Classifier, max_batch: int = 8, max_wait_ms: float = 5.0
    ) -> None:
        self.classifier, self.max_batch, self.max_wait_s = classifier, max_batch, max_wait_ms / 1e3
        self.stats = BatchStats()
        self._swap_lock = threading.Lock()  # held while a batch runs: a swap waits for it
        self._queue: queue.Queue[tuple[np.ndarray, Future[Prediction]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def submit(self, image: np.ndarray) -> Future[Prediction]:
        future: Future[Prediction] = Future()
        self._queue.put((image, future))
        return future

    def swap(self, classifier: Classifier) -> Classifier:
        """Use `classifier` from the next batch on; returns the previous one, which no batch
        is using any more when this returns (so its backend may be closed)."""
        with self._swap_lock:
            previous, self.classifier = self.classifier, classifier
        return previous

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            pending = [item]
            deadline = time.perf_counter() + self.max_wait_s
            closing = False
            while len(pending) < self.max_batch:
                remaining = deadline - time.perf_counter()
                try:
                    nxt = (
                        self._queue.get(timeout=max(remaining, 0))
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    closing = True
                    break
                pending.append(nxt)
            self._infer(pending)
            if closing:
                return

    def _infer(self, pending: list[tuple[np.ndarray, Future[Prediction]]]) -> None:
        t0 = time.perf_counter()
        try:
            with self._swap_lock:
                predictions = self.classifier.classify([image for image, _ in pending])
        except Exception as exc:  # hand the failure to every waiting stream, keep serving
            log.error("inference failed for a batch of %d: %s", len(pending), exc)
            for _, future in pending:
                future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.images += len(pending)
        self.stats.infer_ms_total += (time.perf_counter() - t0) * 1e3
        for (_, future), prediction in zip(pending, predictions, strict=True):
            future.set_result(prediction)
