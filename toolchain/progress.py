"""Progress for commands that can take more than ~2 s: a live line on a terminal, plain lines when piped.

Why: a user staring at a silent pipe (CI log, `| tee`) cannot tell a slow step from a hung one, and a
terminal spinner written into a log file is noise. On a terminal we draw rich's spinner/bar; otherwise
we print one plain line when a step has run 2 s, and one every `every` seconds after that.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def activity(label: str, console: Console | None = None, *, every: float = 10.0, first: float = 2.0,
             quiet: bool = False) -> Iterator[None]:
    """Show that `label` is still running: a spinner on a terminal, or periodic plain lines when piped.

    `quiet` (machine output, e.g. --json) drops the piped lines, so a consumer reading both streams
    sees only the JSON; the terminal spinner stays (it erases itself).
    """
    con = console or _stderr()
    if con.is_terminal:
        with con.status(f"{label} ..."):
            yield
        return
    if quiet:
        yield
        return
    stop = threading.Event()
    t0 = time.monotonic()

    def beat() -> None:
        wait = first
        while not stop.wait(wait):
            con.print(f"{label} ... {time.monotonic() - t0:.0f} s", markup=False)
            wait = every

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Steps:
    """A counted sequence of steps (demo rows): a bar on a terminal, one line per step when piped."""

    def __init__(self, total: int, console: Console | None = None, title: str = "") -> None:
        self.total, self.done, self.title = total, 0, title
        self.con = console or _stderr()
        self._bar: Any = None
        self._t0 = time.monotonic()

    def __enter__(self) -> Steps:
        if self.con.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                 console=self.con, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.title, total=self.total)
        return self

    def start(self, description: str) -> None:
        """A step begins: update the bar, or print `[i/n] description` when piped."""
        if self._bar is not None:
            self._bar.update(self._task, description=description)
        else:
            self.con.print(f"[{self.done + 1}/{self.total}] {description} "
                           f"({time.monotonic() - self._t0:.0f} s elapsed)", markup=False)

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
