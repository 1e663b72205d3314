"""Generate CareLedger's contract test vectors and its protocol golden file, deterministically.

Usage (from the repository root)::

    python tests/vectors/generate.py            # (re)write tests/vectors/**/*.json
    python tests/vectors/generate.py --check    # exit 1 if any file would change (or is not generated)
    python tests/vectors/generate.py --hashes   # print {vector file: post app hash} as JSON

Everything is fixed: keys come from 32-byte seeds ``SHA-256("careledger-vectors/" + label)``, block
times are ``genesis_time_ms + 1000 * height``, and Ed25519 signatures are deterministic, so the output
is byte-for-byte the same on every run, machine and hash seed.

Files, by directory (each file is one vector; the directory says what its state depends on):

* ``tests/vectors/*.json``: the envelope (signers, nonces, types, payloads, check order, signatures),
  identity and governance. Their state never records the block time, so a real network reproduces
  their app hashes exactly.
* ``tests/vectors/<contract>/*.json`` (``records`` for records, consent and audit; ``supply``,
  ``claims``, ``trials``, ``research``; ``identity`` for key rotation and recovery): their state
  records block times (and EPCIS event times).
* ``tests/vectors/protocol.json``: golden values of the encodings (not a contract vector).

Contract vector format (``format: careledger-vector/1``), in the style of ethereum/consensus-specs::

    {"name", "description", "format",
     "pre":   {"genesis": {...}, "genesis_hash": hex, "genesis_app_hash": hex,
               "blocks": [{"height", "time_ms", "proposer", "txs": [wire], "app_hash": hex}]},
     "block": {"height", "time_ms", "proposer", "txs": [wire]},
     "post":  {"results": [{"tx": hash hex, "included": bool, "code": int}],
               "receipts": [receipt of each included tx], "txs_root": hex, "receipts_root": hex,
               "changes": {key: value or null}, "state": {key: value or null}, "app_hash": hex}}

A transaction's wire bytes are the UTF-8 encoding of its ``txs`` string. To replay: build the genesis
state, execute each ``pre`` block (every transaction in it is valid), then execute ``block``: each
transaction goes through the stateless checks and ``BlockExecution.add``; an invalid one (``included:
false``) is left out with its code; the block is finished even if it ends up empty. Receipts must
match after canonical encoding. ``changes`` is the block's whole changeset (every key it wrote, with
the value written, ``null`` for a deletion): ``app_hash`` is computed from it (docs/protocol.md
section 11). ``state`` lists selected keys after the block (``null``: absent), including keys the block
must *not* have written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script: make ``vectors.*`` importable (tests/ on the path)
    sys.path.insert(0, str(HERE.parent))

from vectors import (  # noqa: E402
    claims,
    envelope,
    identity_governance,
    identity_keys,
    records_consent_audit,
    research,
    supply,
    trials,
)
from vectors.golden import protocol  # noqa: E402

GROUPS: dict[str, list[Callable[[], dict[str, Any]]]] = {
    "": [*envelope.VECTORS, *identity_governance.VECTORS],
    "records": records_consent_audit.VECTORS,
    "supply": supply.VECTORS,
    "claims": claims.VECTORS,
    "trials": trials.VECTORS,
    "research": research.VECTORS,
    "identity": identity_keys.VECTORS,
}
"""Vector functions by directory under tests/vectors ("" for the directory itself)."""


def dump(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def build_all() -> dict[str, bytes]:
    """Path relative to tests/vectors -> exact bytes of every generated file."""
    files = {f"{directory}/{fn.__name__}.json".lstrip("/"): dump(fn())
             for directory, functions in GROUPS.items() for fn in functions}
    files["protocol.json"] = dump(protocol())
    return files


def existing_files() -> list[str]:
    """Every JSON file under tests/vectors, relative to it."""
    return sorted(str(p.relative_to(HERE)) for p in HERE.rglob("*.json"))


def main(argv: list[str]) -> int:
    files = build_all()
    if "--hashes" in argv:
        print(json.dumps({name: json.loads(data)["post"]["app_hash"] for name, data in sorted(files.items())
                          if name != "protocol.json"}, sort_keys=True))
        return 0
    stale = [name for name, data in files.items() if not (HERE / name).exists() or (HERE / name).read_bytes() != data]
    strays = [name for name in existing_files() if name not in files]
    if "--check" in argv:
        for name in stale:
            print(f"out of date: {name}", file=sys.stderr)
        for name in strays:
            print(f"not generated (delete it or add its generator): {name}", file=sys.stderr)
        return 1 if stale or strays else 0
    for name in stale:
        (HERE / name).parent.mkdir(exist_ok=True)
        (HERE / name).write_bytes(files[name])
        print(f"wrote {name}")
    for name in strays:
        print(f"not generated (delete it or add its generator): {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
