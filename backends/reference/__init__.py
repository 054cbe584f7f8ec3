"""`cpu-reference`: the float reference simulator as a board.

Not a stub: it is the first target and what `verify` compares every other board against.
"""

from .backend import ReferenceBackend

__all__ = ["ReferenceBackend"]
