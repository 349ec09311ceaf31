"""What a stage's result depends on, as hashes: its code and the libraries that compute it.

A training run folder is keyed by its config, its data and :func:`code_digest`, so a change to the
code (or to torch / numpy) starts a new run instead of resuming the old one and exporting old
weights as the new model. The digest covers every ``.py`` file of the ``danceba`` and ``pipelines``
packages: any code a stage can run, so it may start a new run for a change that could not matter
(a comment), never resume one that does.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

CODE_PACKAGES = ("danceba", "pipelines")
NUMERIC_LIBRARIES = ("torch", "numpy")


def package_files(package: str) -> list[tuple[str, Path]]:
    """``(package/relative/path.py, file)`` for the package's sources, sorted ([] when not importable)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    files = [
        (f"{package}/{path.relative_to(location).as_posix()}", path)
        for location in spec.submodule_search_locations
        for path in Path(location).rglob("*.py")
        if "__pycache__" not in path.parts
    ]
    return sorted(files)


def code_digest(packages: tuple[str, ...] = CODE_PACKAGES) -> str:
    """sha256 (12 hex digits) of the packages' sources (relative path + bytes) and library versions."""
    digest = hashlib.sha256()
    for package in packages:
        for name, path in package_files(package):
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    for library in NUMERIC_LIBRARIES:
        digest.update(f"{library}=={importlib.metadata.version(library)}\0".encode())
    return digest.hexdigest()[:12]
