"""`--timeout SECONDS` for long CLI commands: a wall-clock deadline that ends the command cleanly.

Why: a user (or CI) must be able to bound any command, even on inputs our own work bounds miss. The
deadline is a SIGALRM timer; its handler raises a `SpikeforgeError`, so the command ends with one line
and exit 2, and the atomic writers remove their temporary output on the way out.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from typing import Any

import click

from .errors import SpikeforgeError
from .validate_opts import check_number


class TimeoutExpired(SpikeforgeError):
    """The command ran past --timeout."""


def with_timeout(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--timeout` to a click command callback (apply below `handle_errors`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        check_number("--timeout", timeout)
        if timeout is None or threading.current_thread() is not threading.main_thread():
            return fn(*args, **kwargs)

        def expire(signum: int, frame: Any) -> None:
            raise TimeoutExpired(f"stopped after --timeout {timeout:g} s; nothing was written",
                                 field="--timeout")

        old = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
        try:
            return fn(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    return click.option("--timeout", type=float, default=None,
                        help="Stop (exit 2, nothing written) after this many seconds.")(wrapper)
