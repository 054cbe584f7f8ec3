"""Map the top-level folders into the one `spikeforge` namespace.

The layout is fixed by the user (toolchain/, frontends/, backends/, emulators/, boards/);
sub-packages are discovered so that a new backend folder needs no packaging edit.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {
    "spikeforge": "toolchain",
    "spikeforge.frontends": "frontends",
    "spikeforge.backends": "backends",
    "spikeforge.emulators": "emulators",
    "spikeforge.boards": "boards",
}


def _packages() -> list[str]:
    found = []
    for pkg, folder in ROOTS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            rel = init.parent.relative_to(folder).parts
            found.append(".".join((pkg, *rel)))
    return found


setup(
    packages=_packages(),
    package_dir=ROOTS,
    package_data={"spikeforge": ["models/*"], "spikeforge.boards": ["*.toml"], "": ["*.toml", "*.json"]},
    include_package_data=True,
)
