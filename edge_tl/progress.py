"""One progress meter for train, export, stream and bench: count, throughput and ETA on stderr.

Library code calls `track(iterable, description, total)`; the bars draw on a terminal; piped
output gets a plain line every few seconds instead, so long steps never look hung.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["track", "set_enabled", "PLAIN_INTERVAL_S"]

PLAIN_INTERVAL_S = 5.0  # short steps print nothing; long ones a line this often

T = TypeVar("T")
_enabled = True


def set_enabled(enabled: bool) -> None:
    """Switch bars off (`--quiet`, `--json`)."""
    global _enabled
    _enabled = enabled


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield from `items`, drawing a bar with rate and ETA when stderr is a terminal."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if not _enabled:
        yield from items
        return
    if not sys.stderr.isatty():  # piped (`make demo | tee`): a plain line every few seconds
        yield from _plain(items, description, total)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _RateColumn(ProgressColumn):
        def render(self, task) -> Text:  # type: ignore[no-untyped-def]
            return Text(f"{task.speed:7.1f}/s" if task.speed else "      -/s")

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def _plain(items: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= PLAIN_INTERVAL_S:
            last = now
            of = f"/{total}" if total else ""
            print(
                f"{description}: {done}{of} ({done / (now - started):.1f}/s)",
                file=sys.stderr,
                flush=True,
            )
