"""The package's layering: every import arrow points down (no module imports one that depends on it),
and reading the configuration loads no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.project_files import ROOT

PACKAGE = ROOT / "danceba"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere in its text (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: project_imports(path, modules) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_depends_on_it() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert cycles(graph) == []


def test_the_data_layer_does_not_import_the_configuration_or_the_models() -> None:
    graph = import_graph()
    for name, imported in graph.items():
        if name.startswith("danceba.data."):
            assert not {m for m in imported if m == "danceba.config" or m.startswith("danceba.train")}, name


def test_the_training_loop_imports_no_model_or_domain_code() -> None:
    """``danceba.train`` is the generic loop; the VQ-VAE and GPT recipes are ``danceba.trainers``."""
    graph = import_graph()
    generic = [name for name in graph if name.startswith("danceba.train.")]
    assert "danceba.train.loop" in generic and "danceba.trainers.gpt" in graph
    allowed = ("danceba.train.", "danceba.nested", "danceba.atomic", "danceba.strict_dataclass")
    for name in generic:
        assert all(m.startswith(allowed) for m in graph[name]), (name, sorted(graph[name]))


@pytest.mark.parametrize("config", ["params.yaml", "configs/paper.yaml", "configs/scale.yaml"])
def test_loading_the_params_imports_no_torch_nor_audio_or_table_libraries(config: str) -> None:
    code = (
        "import sys; from danceba.config import load_params; "
        f"params = load_params({str(ROOT / config)!r}); "
        "assert params.train_gpt.model.vocab_up == params.train_vqvae.model.l_bins; "
        "heavy = ('torch', 'mambapy', 'numba', 'librosa', 'scipy', 'pandas', 'pyarrow'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
