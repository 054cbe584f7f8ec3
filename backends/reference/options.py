"""`--set` keys of the reference backend: none (it runs the float graph as it is)."""

from __future__ import annotations

from spikeforge.options import Opt

OPTIONS: dict[str, Opt] = {}
