"""The stages of a DVC project as a small graph: their order, params, and which depend on a seed.

Read through DVC itself (``Repo.index.graph``), so ``foreach``/``matrix`` stages, ``vars`` and
``dvc.yaml`` files in subfolders are named exactly as ``dvc repro`` names them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class StageInfo:
    """One pipeline stage of dvc.yaml: its name, its params keys, the stages it reads from."""

    name: str
    params: tuple[str, ...]
    upstream: tuple[str, ...]


def dvc_stages(project_root: str | Path) -> list[StageInfo]:
    """The pipeline stages of the DVC project, upstream first (ties in dvc.yaml order)."""
    import networkx as nx
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    root = Path(project_root).resolve()
    with Repo(os.fspath(root)) as repo:
        graph = repo.index.graph  # edges: stage -> the stage whose output it depends on
        position = {stage: i for i, stage in enumerate(repo.index.stages)}
        order = nx.lexicographical_topological_sort(
            graph.reverse(copy=True), key=lambda s: f"{position[s]:09d}"
        )
        stages = []
        for stage in order:
            if not isinstance(stage, PipelineStage):
                continue  # a .dvc file: data, no command
            params = tuple(
                key for dep in stage.deps if isinstance(dep, ParamsDependency) for key in dep.params
            )
            upstream = tuple(
                stage_address(s.path, s.name, root)
                for s in graph.successors(stage)
                if isinstance(s, PipelineStage)
            )
            stages.append(StageInfo(stage_address(stage.path, stage.name, root), params, upstream))
    return stages


def stage_address(dvcfile: str | Path, name: str, project_root: Path) -> str:
    """How ``dvc repro`` names a stage from the project root: ``name``, or ``sub/dvc.yaml:name``."""
    relative = Path(os.path.relpath(dvcfile, project_root)).as_posix()
    return name if relative == "dvc.yaml" else f"{relative}:{name}"


def covers(listed: str, key: str) -> bool:
    """True when a dvc.yaml params entry ``listed`` (a key, or a section such as ``train_gpt``, which
    DVC tracks whole) includes the dotted ``key``."""
    return key == listed or key.startswith(listed + ".")


def lists_param(stage: StageInfo, key: str) -> bool:
    """True when the stage's params entries include ``key`` (itself or a section around it)."""
    return any(covers(listed, key) for listed in stage.params)


def seed_dependent(stages: Sequence[StageInfo], seed_params: Sequence[str]) -> set[str]:
    """Stages that list a seed key among their params (or its section), and every stage downstream."""
    seeded = {s.name for s in stages if any(lists_param(s, key) for key in seed_params)}
    for stage in stages:  # upstream first, so one pass reaches every descendant
        if set(stage.upstream) & seeded:
            seeded.add(stage.name)
    return seeded


def with_upstream(stages: Sequence[StageInfo], targets: Sequence[str]) -> list[str]:
    """``targets`` and every stage they depend on, in pipeline order; unknown names raise."""
    by_name = {s.name: s for s in stages}
    unknown = [t for t in targets if t not in by_name]
    if unknown:
        raise ValueError(f"stages {unknown}: not in dvc.yaml (stages: {', '.join(by_name)})")
    wanted, todo = set(), list(targets)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(by_name[name].upstream)
    return [s.name for s in stages if s.name in wanted]
