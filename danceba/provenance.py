"""What a stage's result depends on, as hashes: its code and the libraries that compute it.

A training run folder is keyed by its config, its data and :func:`code_digest`, so a change to the
code (or to torch / numpy) starts a new run instead of resuming the old one and exporting old
weights as the new model. The digest covers the code a stage can run: the sources of its entry module
and of every ``danceba`` / ``pipelines`` module it can import, found statically (every ``import``
statement, also those inside functions, and the packages' ``__init__`` files that Python runs on the
way). It may start a new run for a change that could not matter (a comment in an imported module),
never resume one that does; a module the stage cannot import (a viewer, a benchmark) changes nothing.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

CODE_PACKAGES = ("danceba", "pipelines")
NUMERIC_LIBRARIES = ("torch", "numpy")


def package_root(package: str) -> Path | None:
    """The folder of a top-level package, found without importing it (None when not importable)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def module_file(module: str, roots: dict[str, Path]) -> Path | None:
    """``a/b/c.py`` or ``a/b/c/__init__.py`` of dotted ``module`` under its package root, or None."""
    top, *rest = module.split(".")
    if top not in roots:
        return None
    base = roots[top].joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dotted name an ``import`` in ``tree`` can load: ``import a.b`` gives a.b; ``from a import
    b`` gives a and a.b (b may be a submodule); relative imports are resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def with_parents(module: str) -> list[str]:
    """``a.b.c`` -> ``[a, a.b, a.b.c]``: importing a module runs its packages' ``__init__`` first."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(entry: str, packages: tuple[str, ...] = CODE_PACKAGES) -> dict[str, Path]:
    """``{module: file}`` for ``entry`` and every module of ``packages`` it can import, transitively."""
    roots = {name: root for name in packages if (root := package_root(name)) is not None}
    found: dict[str, Path] = {}
    pending = with_parents(entry)
    while pending:
        module = pending.pop()
        if module in found or (path := module_file(module, roots)) is None:
            continue
        found[module] = path
        tree = ast.parse(path.read_bytes(), filename=str(path))
        for name in imported_names(tree, module, path.name == "__init__.py"):
            pending.extend(with_parents(name))
    if entry not in found:
        raise ModuleNotFoundError(f"code_digest: no source for module {entry!r} in {packages}")
    return found


def code_digest(entry: str, packages: tuple[str, ...] = CODE_PACKAGES) -> str:
    """sha256 (12 hex digits) of the sources ``entry`` can run (module name + bytes, sorted) and the
    numeric libraries' versions."""
    digest = hashlib.sha256()
    for module, path in sorted(import_closure(entry, packages).items()):
        digest.update(module.encode() + b"\0" + path.read_bytes() + b"\0")
    for library in NUMERIC_LIBRARIES:
        digest.update(f"{library}=={importlib.metadata.version(library)}\0".encode())
    return digest.hexdigest()[:12]
