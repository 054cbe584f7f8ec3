"""Make lava-nc 0.10.0 importable on Python 3.11.

Lava 0.10.0 declares Python < 3.11. On 3.11, ``dataclasses`` rejects unhashable (mutable) defaults, and
``lava.magma.compiler.var_model`` has several, e.g. ``x: ByteEncoder = ByteEncoder()``; every Lava run
imports that module, so Lava cannot run at all. We never edit site-packages: instead a ``sys.meta_path``
finder intercepts that one module, reads its *source* file, rewrites each such default into
``field(default_factory=...)`` with the ``ast`` module, and compiles the result. The loader never consults
``__pycache__``: a stale ``var_model.cpython-311.pyc`` compiled from the unpatched source (pip writes one
at install time) would otherwise be loaded and fail the same way.

Usage::

    from spikeforge.backends.loihi._lava_compat import install, import_lava
    install()          # idempotent; then `import lava...` works
    lava = import_lava()
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence

TARGET = "lava.magma.compiler.var_model"

#: name the rewritten module binds `dataclasses.field` to (`field` unless the module uses that name)
_FIELD = "field"
_FIELD_ALIAS = "_spikeforge_dataclass_field"


def _is_dataclass_decorator(dec: ast.expr) -> bool:
    target = dec.func if isinstance(dec, ast.Call) else dec
    if isinstance(target, ast.Name):
        return target.id == "dataclass"
    if isinstance(target, ast.Attribute):
        return target.attr == "dataclass"
    return False


def _is_field_call(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id in (_FIELD, _FIELD_ALIAS)) or (
        isinstance(f, ast.Attribute) and f.attr == "field"
    )


def _mentions(annotation: ast.expr | None, names: tuple[str, ...]) -> bool:
    """True when an annotation (an expression, or a string under `from __future__ import annotations`)
    names ClassVar/InitVar: those are not fields and keep their value."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return any(n in annotation.value for n in names)
    for sub in ast.walk(annotation):
        if isinstance(sub, ast.Name) and sub.id in names:
            return True
        if isinstance(sub, ast.Attribute) and sub.attr in names:
            return True
    return False


def _factory_for(call: ast.Call) -> ast.expr:
    """`Cls()` -> `Cls`; any other call -> `lambda: <call>` (evaluated per instance, as before per class)."""
    if not call.args and not call.keywords and isinstance(call.func, (ast.Name, ast.Attribute)):
        return call.func
    return ast.Lambda(
        args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                           kwarg=None, defaults=[]),
        body=call,
    )


class _DefaultRewriter(ast.NodeTransformer):
    """Rewrite call-valued defaults of dataclass fields into `field(default_factory=...)`."""

    def __init__(self, field_name: str) -> None:
        self.field_name = field_name
        self.rewritten: list[str] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        self.generic_visit(node)
        if not any(_is_dataclass_decorator(d) for d in node.decorator_list):
            return node
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            value = stmt.value
            if not isinstance(value, ast.Call) or _is_field_call(value):
                continue
            if _mentions(stmt.annotation, ("ClassVar", "InitVar")):
                continue
            stmt.value = ast.Call(
                func=ast.Name(id=self.field_name, ctx=ast.Load()),
                args=[],
                keywords=[ast.keyword(arg="default_factory", value=_factory_for(value))],
            )
            self.rewritten.append(f"{node.name}.{stmt.target.id}")
        return node


def _binds_name(tree: ast.Module, name: str) -> bool:
    for sub in ast.walk(tree):
        if isinstance(sub, ast.Name) and sub.id == name and isinstance(sub.ctx, ast.Store):
            return True
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub.name == name:
            return True
        if isinstance(sub, (ast.Import, ast.ImportFrom)):
            for alias in sub.names:
                if (alias.asname or alias.name.split(".")[0]) == name and not (
                    isinstance(sub, ast.ImportFrom) and sub.module == "dataclasses" and alias.name == "field"
                ):
                    return True
    return False


def patch_source(source: str, filename: str = "<var_model>") -> tuple[ast.Module, list[str]]:
    """Parse `source`, rewrite mutable dataclass defaults; return the new tree and what was rewritten."""
    tree = ast.parse(source, filename=filename)
    field_name = _FIELD_ALIAS if _binds_name(tree, _FIELD) else _FIELD
    rewriter = _DefaultRewriter(field_name)
    tree = rewriter.visit(tree)
    if rewriter.rewritten:
        imp = ast.ImportFrom(module="dataclasses", names=[ast.alias(name="field", asname=(
            None if field_name == _FIELD else field_name))], level=0)
        # After the docstring and `from __future__` imports, which must stay first.
        pos = 0
        body = tree.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            pos = 1
        while pos < len(body) and isinstance(body[pos], ast.ImportFrom) and body[pos].module == "__future__":
            pos += 1
        body.insert(pos, imp)
    ast.fix_missing_locations(tree)
    return tree, rewriter.rewritten


class _SourceOnlyLoader(importlib.abc.Loader):
    """Executes the patched source; never reads or writes bytecode caches."""

    def __init__(self, fullname: str, path: str) -> None:
        self.fullname = fullname
        self.path = path
        self.rewritten: list[str] = []

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # default module creation

    def get_source(self, fullname: str) -> str:
        with open(self.path, "rb") as f:
            return importlib.util.decode_source(f.read())

    def get_code(self, fullname: str) -> types.CodeType:
        tree, self.rewritten = patch_source(self.get_source(fullname), self.path)
        return compile(tree, self.path, "exec", dont_inherit=True)

    def exec_module(self, module: types.ModuleType) -> None:
        code = self.get_code(module.__name__)
        module.__dict__["__file__"] = self.path
        module.__dict__["__spikeforge_patched__"] = tuple(self.rewritten)
        exec(code, module.__dict__)


class LavaCompatFinder(importlib.abc.MetaPathFinder):
    """Finds `lava.magma.compiler.var_model` like the normal path finder, then loads it from source."""

    def __init__(self, targets: tuple[str, ...] = (TARGET,)) -> None:
        self.targets = targets

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None):
        if fullname not in self.targets:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return spec
        loader = _SourceOnlyLoader(fullname, spec.origin)
        # No `has_location`: the import system then computes no __cached__ path for this module;
        # the loader sets __file__ itself.
        return importlib.machinery.ModuleSpec(fullname, loader, origin=spec.origin)


def installed() -> bool:
    return any(isinstance(f, LavaCompatFinder) for f in sys.meta_path)


def install() -> LavaCompatFinder:
    """Put the finder first on `sys.meta_path` (once). Call before anything imports Lava."""
    for f in sys.meta_path:
        if isinstance(f, LavaCompatFinder):
            return f
    finder = LavaCompatFinder()
    sys.meta_path.insert(0, finder)
    # An earlier failed import leaves nothing in sys.modules, but a half-initialised parent could
    # cache the failure: drop the target so the next import goes through the finder.
    mod = sys.modules.get(TARGET)
    if mod is not None and not getattr(mod, "__spikeforge_patched__", None) and not hasattr(mod, "CoreEncoder"):
        del sys.modules[TARGET]
    return finder


def import_lava() -> types.ModuleType:
    """Install the hook and import the parts of Lava spikeforge uses; returns the `lava` package."""
    install()
    try:
        lava = importlib.import_module("lava")
        importlib.import_module(TARGET)
        importlib.import_module("lava.magma.core.run_configs")
        importlib.import_module("lava.magma.core.run_conditions")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from spikeforge.errors import SpikeforgeError

        raise SpikeforgeError(
            f"Lava (lava-nc) is not importable: {exc}",
            hint="install lava-nc 0.10.0 (make install does: --no-deps --ignore-requires-python)",
        ) from None
    return lava


def lava_available() -> bool:
    """True when lava-nc is installed (without importing it)."""
    return importlib.util.find_spec("lava") is not None
