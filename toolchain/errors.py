"""Errors users see. Each names where the problem is (file, node, field) and why.

The CLI turns a `SpikeforgeError` into one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations


class SpikeforgeError(Exception):
    """A problem with the user's input or request (exit code 2)."""

    exit_code = 2

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        node: str | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.node = node
        self.field = field
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.node:
            where.append(f"node '{self.node}'")
        if self.field:
            where.append(f"field '{self.field}'")
        text = (": ".join([", ".join(where), self.reason]) if where else self.reason)
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class GraphError(SpikeforgeError):
    """An NIR graph that is malformed or unsupported."""


class BoardError(SpikeforgeError):
    """A board spec that is malformed, or a request the board cannot satisfy."""


class FitError(BoardError):
    """A model that does not fit the board's resources."""


class InputError(SpikeforgeError):
    """Input data (.npz) with a wrong shape, dtype or key."""


class UnsupportedError(SpikeforgeError):
    """A construct a frontend or backend cannot map."""


class VerificationError(SpikeforgeError):
    """Verification failed (exit code 1): the chip program disagrees with the float reference."""

    exit_code = 1
