"""Shared test set-up: offline, quiet, fast, CPU only."""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("NUMBA_CACHE_DIR", str(_ROOT / ".cache" / "numba"))
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from danceba.config import JointsConfig, MusicFeaturesConfig  # noqa: E402
from danceba.data.data_config import DataConfig, MiniDatasetConfig  # noqa: E402
from pipelines import fetch, joints, music_features  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, restored after (``pytestmark = pytest.mark.usefixtures(...)``): tiny
    convolutions gain nothing from threads, and on a loaded 2-core machine 2 intra-op threads made the
    VQ-VAE tests ~40x slower (OpenMP barriers under oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------
# The first three stages on a tiny mini dataset, built once per test session
# ----------------------------------------------------------------------------------------------

TINY = MiniDatasetConfig(
    seed=3,
    genres=("gBR", "gHO"),
    music_per_genre=2,
    dancers_per_music=1,
    choreographies_per_dancer=2,
    seconds=5.0,
    sample_rate=22050,
)


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chain")
    paths = {
        "raw": root / "raw",
        "joints": root / "joints.parquet",
        "sequences": root / "sequences.parquet",
        "summary": root / "dataset.json",
        "music60": root / "music_60.parquet",
        "music7": root / "music_7p5.parquet",
    }
    fetch.fetch_dataset(DataConfig(source="mini", mini=TINY), paths["raw"])
    summary = joints.write_joints_tables(paths["raw"], paths["joints"], paths["sequences"], JointsConfig())
    paths["summary"].write_text(json.dumps(summary))
    music_features.write_music_features(
        paths["raw"], paths["sequences"], paths["music60"], paths["music7"], MusicFeaturesConfig()
    )
    return paths


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for the session (the flow tests); no heartbeat thread."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy generator, so every test is reproducible."""
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (``tests.test_viewer.chromium``) for the player and report tests; skipped, with
    the reason printed, where it cannot run."""
    from tests.test_viewer import browser_unavailable, chromium

    if reason := browser_unavailable():
        print(f"browser tests skipped: {reason}")
        pytest.skip(reason)
    with chromium() as running:
        yield running
