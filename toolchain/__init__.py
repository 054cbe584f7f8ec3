"""spikeforge: compile trained spiking and ANN models to neuromorphic chips, emulate, verify and profile.

The Python API (see `spikeforge.api`)::

    import spikeforge as sf

    art = sf.compile("model.nir", board="loihi2")        # -> Artifact (shows board, decisions, warnings)
    res = sf.verify(art, "inputs.npz")                    # -> VerifyResult (.passed, .checks, .metrics)
    prof = sf.profile(art, "inputs.npz")                  # -> Profile (.energy_total in J per inference)
    trace = sf.emulate(art, "inputs.npz")                 # -> Trace (.outputs, .counts)
    sf.boards()                                           # the board specs
    sf.sweep("sweep.toml", "out/sweep")                   # -> SweepResult (records, Pareto set)
    sf.report("out/sweep", "out/sweep.html")              # self-contained HTML
    art.save("out/art"); sf.Artifact.load("out/art")

Names are resolved lazily, so `import spikeforge` (and the CLI's start-up) loads nothing heavy.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"

_API = ("load", "compile", "emulate", "verify", "profile", "boards", "bundled", "Artifact", "SpikeforgeWarning",
        "sweep", "report")
_ERRORS = ("SpikeforgeError", "InputError", "BoardError", "FitError", "GraphError", "UnsupportedError")
__all__ = [*_API, *_ERRORS, "__version__"]


def __getattr__(name: str) -> Any:
    """Import the API module on first use (PEP 562), keeping `import spikeforge` cheap."""
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _ERRORS:
        from . import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'spikeforge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


class _CallableModule(types.ModuleType):
    """A submodule that shares its name with an API function (`spikeforge.verify`, `spikeforge.boards`).

    Why: importing the submodule binds it on the package, which would hide the API function; making
    the module callable keeps `sf.verify(art, x)` and `spikeforge.verify.verify` both working.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from . import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType) and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
