"""The artifact manifest schema (manifest.json), validated on load before any array is used.

Why: emulators index arrays by name and trust their dtype and shape; a manifest that is a list, lacks
`board`, lists `files` as a list or names arrays that arrays.npz does not hold used to surface as a
KeyError deep inside an emulator. Here the manifest is parsed against a versioned schema, every file
path is confined to the artifact directory, and arrays.npz is checked against the manifest's index
(presence, dtype, shape) and its sha256 before anything runs. Nothing here unpickles.

Versions: 2 adds `arrays` (name -> dtype, shape), `board_spec` (the full board table the artifact was
compiled for) and `manifest_sha256`. Format 1 artifacts are refused with "recompile": without a digest,
nothing protects the backend data in `meta` that emulators trust.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import SpikeforgeError

FORMAT_VERSION = 2
#: format 1 manifests carry no digest or array index, so nothing protects what emulators read from them
READABLE_VERSIONS = (2,)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: dtypes an artifact may hold: numbers and booleans only (no objects, no pickles)
ALLOWED_DTYPE_KINDS = "biuf"


class ArrayEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dtype: str
    shape: list[int]

    @field_validator("dtype")
    @classmethod
    def _plain(cls, v: str) -> str:
        try:
            dt = np.dtype(v)
        except TypeError:
            raise ValueError(f"unknown dtype {v!r}") from None
        if dt.kind not in ALLOWED_DTYPE_KINDS:
            raise ValueError(f"dtype {v!r} is not a plain number type")
        return v

    @field_validator("shape")
    @classmethod
    def _nonneg(cls, v: list[int]) -> list[int]:
        if any(d < 0 for d in v):
            raise ValueError(f"negative dimension in {v}")
        return v


class OptionsModel(BaseModel):
    model_config = ConfigDict(extra="allow")  # options added by later versions are kept, not refused

    dt: float | None = None
    timesteps: int | None = Field(default=None, ge=1)
    bit_budget: float | None = Field(default=None, gt=0)
    prune: float | None = Field(default=None, ge=0, lt=1)
    delay_policy: str = "auto"
    seed: int = 0
    extra: dict[str, Any] = {}

    @field_validator("dt")
    @classmethod
    def _dt(cls, v: float | None) -> float | None:
        if v is not None and not (np.isfinite(v) and v > 0):
            raise ValueError(f"dt must be a finite number > 0, got {v}")
        return v


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")  # keys added by later versions are kept, not refused

    format_version: int
    tool: str = "spikeforge"
    tool_version: str = ""
    board: str = Field(min_length=1)
    backend: str = Field(min_length=1)
    input_hash: str = ""
    options: OptionsModel = OptionsModel()
    meta: dict[str, Any] = {}
    files: dict[str, str]
    text_files: list[str] = []
    arrays: dict[str, ArrayEntry] | None = None
    board_spec: dict[str, Any] | None = None

    @field_validator("files")
    @classmethod
    def _files(cls, v: dict[str, str]) -> dict[str, str]:
        for rel, digest in v.items():
            p = PurePosixPath(rel)
            if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel or "\0" in rel:
                raise ValueError(f"file path {rel!r} leaves the artifact directory")
            if not _SHA256.match(digest):
                raise ValueError(f"file {rel!r} has no sha256 digest")
        return v


def parse_manifest(raw: Any, file: str) -> Manifest:
    """Validate a decoded manifest.json; one error naming the first bad field."""
    if not isinstance(raw, dict):
        raise SpikeforgeError(f"manifest must be a JSON object, got {type(raw).__name__}", file=file)
    version = raw.get("format_version")
    if type(version) is not int or version not in READABLE_VERSIONS:  # True == 1 in Python: check the type
        raise SpikeforgeError(f"artifact format {version!r} is not supported (this spikeforge reads "
                              f"{', '.join(map(str, READABLE_VERSIONS))}; recompile the model)", file=file,
                              field="format_version")
    try:
        m = Manifest.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"])
        raise SpikeforgeError(f"invalid manifest: {e['msg'].removeprefix('Value error, ')}", file=file,
                              field=loc) from None
    if version >= 2 and m.arrays is None:
        raise SpikeforgeError("invalid manifest: format 2 needs the 'arrays' index", file=file, field="arrays")
    if m.arrays and "arrays.npz" not in m.files:
        raise SpikeforgeError("manifest lists arrays but not arrays.npz among its files", file=file,
                              field="files")
    if m.board_spec is not None and m.board_spec.get("name") != m.board:
        raise SpikeforgeError(f"board_spec is for {m.board_spec.get('name')!r}, manifest names {m.board!r}",
                              file=file, field="board_spec")
    return m


def array_index(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    return {k: {"dtype": np.asarray(v).dtype.str, "shape": list(np.shape(v))} for k, v in sorted(arrays.items())}


def check_arrays(index: dict[str, ArrayEntry] | None, arrays: dict[str, np.ndarray], file: str) -> None:
    """Every array the manifest lists is present with its dtype and shape; no extra or object arrays."""
    for key, arr in arrays.items():
        if arr.dtype.kind not in ALLOWED_DTYPE_KINDS:
            raise SpikeforgeError(f"array '{key}' has dtype {arr.dtype}; artifacts hold plain numbers only",
                                  file=file, field=key)
    if index is None:
        return
    for key, entry in index.items():
        if key not in arrays:
            raise SpikeforgeError(f"array '{key}' listed in the manifest is missing from arrays.npz", file=file,
                                  field=key)
        arr = arrays[key]
        if np.dtype(entry.dtype) != arr.dtype or list(arr.shape) != entry.shape:
            raise SpikeforgeError(f"array '{key}' is {arr.dtype} {tuple(arr.shape)}; the manifest says "
                                  f"{np.dtype(entry.dtype)} {tuple(entry.shape)}", file=file, field=key)
    extra = sorted(set(arrays) - set(index))
    if extra:
        raise SpikeforgeError(f"arrays.npz holds arrays the manifest does not list: {extra[:5]}", file=file)
