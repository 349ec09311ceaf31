"""The chain behind an MLflow run, for ``danceba lineage RUN_ID``.

Every stage run carries ``dvc.in.<path>`` / ``dvc.out.<path>`` tags (see :mod:`danceba.tracking`).
Starting from one run, each input is matched to the run whose ``dvc.out.<same path>`` has the same
hash (its producer), and so on up to the raw data: metrics <- checkpoint <- tokens <- VQ-VAE <-
features <- raw data. A link is stale when the hash it was made from no longer matches the
workspace; a link without a producer (an untracked stage, or data from outside) has ``producer None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from danceba import tracking, tracking_store


@dataclass(frozen=True)
class ProducerRun:
    """The MLflow run that wrote a path."""

    run_id: str
    stage: str
    git_commit: str
    git_dirty: str
    status: str
    seed: str
    params: dict[str, str]


@dataclass(frozen=True)
class LineageLink:
    """One path in the chain, at ``depth`` (0: the start run's own outputs, 1: its inputs, ...).

    ``current_hash``: the path's hash now (workspace, or dvc.lock), None when it is nowhere.
    ``repeated``: the producer already appears above, so its inputs are not listed again.
    """

    depth: int
    path: str
    hash: str
    producer: ProducerRun | None
    current_hash: str | None
    stale: bool
    repeated: bool = False


class _CurrentHashes:
    """Hash of a path now: recomputed from the workspace, or read from dvc.lock (cached per path)."""

    def __init__(self, project_root: Path, against: Literal["workspace", "lock"]) -> None:
        self.root, self.against = project_root, against
        self.locked = tracking.locked_hashes(project_root)
        self.cache: dict[str, str | None] = {}

    def __call__(self, path: str) -> str | None:
        if path not in self.cache:
            computed = None
            exists = (self.root / path).exists()
            if self.against == "lock" and path in self.locked:
                computed = self.locked[path]
            elif exists:
                computed = tracking.dvc_hash(self.root / path)
            else:
                computed = self.locked.get(path)
            self.cache[path] = computed
        return self.cache[path]


def _tagged_paths(run: Any, prefix: str) -> list[tuple[str, str]]:
    """Sorted ``(path, hash)`` from a run's tags starting with ``prefix``."""
    return sorted(
        (key.removeprefix(prefix), value) for key, value in run.data.tags.items() if key.startswith(prefix)
    )


def _producer(run: Any) -> ProducerRun:
    tags = run.data.tags
    return ProducerRun(
        run_id=run.info.run_id,
        stage=tags.get("danceba.stage", run.info.run_name or "?"),
        git_commit=tags.get("git.commit", "unknown"),
        git_dirty=tags.get("git.dirty", "unknown"),
        status=run.info.status,
        seed=tags.get("danceba.seed", "none"),
        params=dict(sorted(run.data.params.items())),
    )


def find_producer(client: Any, experiment_ids: list[str], path: str, hash_value: str) -> Any | None:
    """The newest run (FINISHED preferred) tagged ``dvc.out.<path> = hash_value``, or None."""
    runs = tracking_store.retry_locked(
        client.search_runs,
        experiment_ids,
        f"tags.`{tracking.DVC_OUT}{path}` = '{hash_value}'",
        order_by=["attributes.start_time DESC"],
        max_results=50,
    )
    finished = [run for run in runs if run.info.status == "FINISHED"]
    return (finished or list(runs) or [None])[0]


def lineage(
    run_id: str, project_root: Path, *, against: Literal["workspace", "lock"] = "workspace"
) -> list[LineageLink]:
    """The chain behind ``run_id`` in depth-first order (indent by ``depth`` to draw the tree).

    ``against="workspace"`` recomputes each path's DVC hash from the files (dvc.lock for a path that
    is not on disk); ``"lock"`` reads dvc.lock first (no hashing) and recomputes only what it lacks.
    """
    root = Path(project_root).resolve()
    client = tracking_store.mlflow_client(tracking_store.configure_tracking(root))
    try:
        start = tracking_store.retry_locked(client.get_run, run_id)
    except Exception as error:
        raise ValueError(f"run {run_id!r}: not found in the tracking store ({error})") from error
    experiment_ids = [e.experiment_id for e in tracking_store.retry_locked(client.search_experiments)]
    current = _CurrentHashes(root, against)
    links: list[LineageLink] = []
    expanded: set[str] = set()

    def link(depth: int, path: str, hash_value: str, producer: ProducerRun | None, repeated: bool) -> None:
        now = current(path)
        links.append(LineageLink(depth, path, hash_value, producer, now, now != hash_value, repeated))

    def walk_inputs(run: Any, depth: int) -> None:
        expanded.add(run.info.run_id)
        for path, hash_value in _tagged_paths(run, tracking.DVC_IN):
            producer = find_producer(client, experiment_ids, path, hash_value)
            repeated = producer is not None and producer.info.run_id in expanded
            link(depth, path, hash_value, _producer(producer) if producer else None, repeated)
            if producer is not None and not repeated:
                walk_inputs(producer, depth + 1)

    for path, hash_value in _tagged_paths(start, tracking.DVC_OUT):
        link(0, path, hash_value, _producer(start), False)
    walk_inputs(start, 1)
    return links


def _short_hash(value: str) -> str:
    return f"{value[:8]}….dir" if value.endswith(".dir") else f"{value[:8]}…"


def _short_params(params: dict[str, str], limit: int = 6, width: int = 24) -> str:
    shown = [f"{k}={v if len(v) <= width else v[: width - 1] + '…'}" for k, v in list(params.items())[:limit]]
    more = f", +{len(params) - limit}" if len(params) > limit else ""
    return "{" + ", ".join(shown) + more + "}" if shown else ""


def describe_producer(producer: ProducerRun | None) -> str:
    """``run 3f2a1b9c (evaluate, git 1a2b3c4d5e, dirty, seed 0, FINISHED) {k=v, ...}``."""
    if producer is None:
        return "no MLflow run"
    facts = [producer.stage, f"git {producer.git_commit[:10]}"]
    if producer.git_dirty == "true":
        facts.append("dirty")
    if producer.seed != "none":
        facts.append(f"seed {producer.seed}")
    facts.append(producer.status)
    return f"run {producer.run_id[:8]} ({', '.join(facts)}) {_short_params(producer.params)}".rstrip()


def format_lineage(links: list[LineageLink]) -> str:
    """An indented tree, one link per line, ``STALE`` where the hash no longer matches."""
    lines = []
    for item in links:
        arrow = "" if item.depth == 0 else "← "
        producer = (
            f"run {item.producer.run_id[:8]} (see above)"
            if item.repeated
            else describe_producer(item.producer)
        )
        line = f"{'    ' * item.depth}{arrow}{item.path} [md5 {_short_hash(item.hash)}] ← {producer}"
        if item.stale:
            now = "missing" if item.current_hash is None else f"now {_short_hash(item.current_hash)}"
            line += f"  STALE ({now})"
        lines.append(line)
    return "\n".join(lines)
