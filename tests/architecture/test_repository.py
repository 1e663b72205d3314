"""The repository stands alone: nothing reads outside it, and every third-party file says where it came from.

A user clones this repository with nothing beside it; ``make test`` and ``make demo`` must pass there
(``.ci/run`` proves it by running in a fresh clone in an empty directory). These tests keep the two
ways that could break from coming back: a path that leaves the repository, and a vendored file
nobody can trace to its source and licence.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [ROOT / "src", ROOT / "tests", ROOT / "scripts", ROOT / "bench", ROOT / ".ci", ROOT / "Makefile",
           ROOT / "pyproject.toml"]
SUFFIXES = {".py", ".sh", ".toml", ".mjs", ".js", ".ts", ".go", ".cfg", ""}
OUTSIDE = re.compile(r"""\.\./shared|["'/]shared/(?:data|reference|seed)|["']/work/|["']/home/|["']/root/""")


def source_files() -> list[Path]:
    files: list[Path] = []
    for top in SCANNED:
        if top.is_file():
            files.append(top)
        elif top.is_dir():
            files.extend(p for p in top.rglob("*") if p.is_file() and p.suffix in SUFFIXES
                         and "node_modules" not in p.parts and "data" not in p.relative_to(top).parts[:1])
    return files


def test_nothing_reads_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    hits = []
    for path in source_files():
        if path.resolve() == this:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and not line.lstrip().startswith("#"):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def test_the_scan_catches_an_outside_path() -> None:
    shared = "sha" + "red"  # spelled in two parts, so this file names no outside path itself
    assert OUTSIDE.search(f'DATA = Path(__file__).parents[2] / "../{shared}/data/epcis"')
    assert OUTSIDE.search(f'SYNTHEA = Path("/work/{shared}/data/fhir/synthea")')
    assert not OUTSIDE.search('DATA = Path(__file__).resolve().parents[1] / "data" / "epcis"')


def listed_paths(sources: Path) -> list[str]:
    """The local paths a SOURCES file names in backticks; ``…`` ends a prefix that covers a folder."""
    text = sources.read_text(encoding="utf-8")
    names = []
    for row in (line for line in text.splitlines() if line.startswith("| `")):
        cell = row.split("|")[1]
        names += [n.split("…")[0] for n in re.findall(r"`([^`]+)`", cell)]
    return names


VENDORED_ROOTS = [ROOT / "tests" / "data", ROOT / "src" / "careledger" / "samples"]


@pytest.mark.parametrize("root", VENDORED_ROOTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_vendored_file_is_in_its_sources_table(root: Path) -> None:
    sources = root / "SOURCES.md"
    assert sources.is_file(), f"{root.relative_to(ROOT)} has no SOURCES.md"
    listed = listed_paths(sources)
    missing = [str(p.relative_to(root)) for p in sorted(root.rglob("*"))
               if p.is_file() and p.name != "SOURCES.md" and not p.name.startswith("LICENSE")
               and p.suffix != ".py" and "__pycache__" not in p.parts
               and not any(str(p.relative_to(root)).startswith(prefix) for prefix in listed)]
    assert not missing, f"not in {sources.relative_to(ROOT)}:\n" + "\n".join(missing)


@pytest.mark.parametrize("root", VENDORED_ROOTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_licence_a_sources_table_names_is_there(root: Path) -> None:
    text = (root / "SOURCES.md").read_text(encoding="utf-8")
    for name in re.findall(r"`([^`]*LICENSE[^`]*)`", text):
        assert (root / name).is_file(), f"{name} is named in {root.relative_to(ROOT)}/SOURCES.md but absent"
