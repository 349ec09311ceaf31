"""danceba: music to 3D dance (Danceba, ICCV 2025, on the Bailando design)."""

__version__ = "0.1.0"
