"""Sample documents the product ships for its demo and benchmarks (third-party files with their
licences; see ``SOURCES.md`` beside them). Synthetic data only: no real patient is in any file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def synthea_bundles() -> list[Path]:
    """The vendored Synthea FHIR R4 patient bundles (MIT), in a stable order."""
    root = Path(str(resources.files(__name__).joinpath("fhir/synthea")))
    return sorted(root.glob("*_*_*.json"))
