"""The layers hold by their imports (docs/architecture.md section 1), so they stay true.

Every ``import`` of a ``careledger`` module anywhere in a module counts, function-local ones and
``TYPE_CHECKING`` ones included: a dependency is a dependency wherever it is written. Entry-point
modules (``__main__``) are edges by definition and exempt.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "careledger"

PURE = {"core", "contracts", "chain"}
SHELLS = {"vault", "supply", "claims", "research", "trials"}
ENGINE = {"node", "abci", "keys", "keycrypt"}
EDGES = {"api", "cli", "client", "console", "demo", "bench", "net", "samples"}

ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "contracts": {"core", "contracts"},
    "chain": {"core", "contracts", "chain"},
    "keys": {"core", "keys"},
    "node": {"core", "contracts", "chain", "node", "keys"},
    "abci": {"core", "contracts", "chain", "node", "keys", "abci"},
    **{shell: {"core", "contracts", "chain", "node", "keys", "samples", *SHELLS} for shell in SHELLS},
    "samples": {"samples"},
    "keycrypt": {"core", "keys", "keycrypt"},
    # the Python client is what other programs embed: the protocol (core, payload models) and the
    # request-signing and commitment rules of the shells, nothing that runs a node
    "client": {"core", "contracts", "client", "vault.requests", "vault.canonical", "supply.auth",
               # a release's recipient opens and verifies it; a researcher checks answers against their anchors
               "research.envelope", "research.release", "research.aggregate"},
}
"""What each top-level package may import. Edges (the API, CLI, demo, benchmarks, network tools,
the web console) may import anything below them, but never each other's internals except as listed
in :data:`EDGE_ALLOWED`."""

EDGE_ALLOWED: dict[str, set[str]] = {
    "api": PURE | ENGINE | SHELLS | {"api", "console", "samples"},
    "net": PURE | ENGINE | {"net", "client"},
    "demo": PURE | ENGINE | SHELLS | {"demo", "client", "api", "net", "samples"},
    "bench": PURE | ENGINE | SHELLS | {"bench", "client", "api", "net", "demo", "samples"},
    "console": PURE | ENGINE | SHELLS | {"console", "api"},
    "cli": PURE | ENGINE | SHELLS | EDGES,
}

STDLIB_IO = {"os", "sys", "time", "random", "secrets", "socket", "subprocess", "threading", "asyncio",
             "pathlib", "uuid", "sqlite3", "httpx", "shutil", "tempfile", "signal", "io"}
"""Modules the deterministic packages may not import: clock, randomness, environment, files, network."""


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        yield ".".join(rel.parts), path


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, dotted module)`` for every import in the file, wherever it is written."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            if node.module == "careledger" or node.module.count(".") == 1:
                for alias in node.names:  # ``from careledger.contracts import supply`` names a module too
                    where = SRC.joinpath(*f"{node.module}.{alias.name}".split(".")[1:])
                    if where.is_dir() or where.with_suffix(".py").is_file():
                        yield node.lineno, f"{node.module}.{alias.name}"


def allowed(package: str, target: str) -> bool:
    """May a module of top-level ``package`` import ``careledger.<target>``?"""
    rules = ALLOWED.get(package) or EDGE_ALLOWED.get(package)
    assert rules is not None, f"package careledger.{package} has no layer: add it to test_layers.py"
    top = target.split(".", maxsplit=1)[0]
    return top in rules or any(target == r or target.startswith(r + ".") for r in rules if "." in r)


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert packages <= set(ALLOWED) | set(EDGE_ALLOWED), packages - set(ALLOWED) - set(EDGE_ALLOWED)


def test_imports_follow_the_layers() -> None:
    wrong = []
    for name, path in modules():
        parts = name.split(".")
        if parts[-1] == "__main__" or len(parts) < 2:
            continue
        package = parts[0]
        for line, imported in imports_of(path):
            if imported.startswith("careledger."):
                target = imported.removeprefix("careledger.")
                if not allowed(package, target):
                    wrong.append(f"{path.relative_to(SRC)}:{line} imports {imported}")
    assert not wrong, "layer violations:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", sorted(PURE))
def test_the_deterministic_packages_do_no_io(package: str) -> None:
    wrong = [f"{path.relative_to(SRC)}:{line} imports {target}"
             for name, path in modules() if name.split(".")[0] == package
             for line, target in imports_of(path) if target.split(".")[0] in STDLIB_IO]
    assert not wrong, "\n".join(wrong)


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself: a core module importing a contract, in a function, is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from careledger.contracts import identity\n    return identity\n")
    targets = [t for _, t in imports_of(bad)]
    assert "careledger.contracts.identity" in targets
    assert not allowed("core", "contracts.identity")
    assert allowed("chain", "contracts.identity")
    assert not allowed("client", "vault.gateway") and allowed("client", "vault.requests")
