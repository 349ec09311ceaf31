"""Paths of the project the tests read: the checkout's root and the embedded default's params.

Tests that build tiny configurations start from ``EMBEDDED_PARAMS`` (``configs/embedded.yaml``), not
from ``params.yaml``, so they pass whichever named configuration ``make config`` last wrote."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_PARAMS = ROOT / "configs" / "embedded.yaml"
