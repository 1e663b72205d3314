"""Write the node home of ``tests/data/stores/previous-release/`` with the *previous* release's code.

The upgrade test opens this home with the current code: it must migrate the store (schema 2, no state
commitment, no head record) and carry on. The home must be written by the previous release itself,
not by today's code imitating it, so this script is run once against a checkout of that commit:

    git archive 2676305 src | tar -x -C /tmp/careledger-previous
    PYTHONPATH=/tmp/careledger-previous/src PYTHONDONTWRITEBYTECODE=1 \\
        .venv/bin/python tests/data/stores/make_previous_release_store.py tests/data/stores/previous-release

Keys are derived from fixed seeds (the test signs with the admin's), block times come from the clock.
The script stops the node cleanly, so the ledger is one checkpointed file without a write-ahead log.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.keys import write_key
from careledger.node.home import dev_genesis, init_home
from careledger.node.store import SCHEMA_VERSION

GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CHAIN_ID = "careledger-previous-release"


def seeded(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(f"previous-release/{label}".encode()).digest())


def main(out: Path) -> None:
    assert SCHEMA_VERSION == 2, f"run this against the previous release (schema 2), not schema {SCHEMA_VERSION}"
    out.mkdir(parents=True)
    admin, validator = seeded("admin"), seeded("validator")
    staging = out.parent / f".{out.name}-staging"
    staging.mkdir()
    write_key(staging / "validator.json", validator, "node")
    (staging / "genesis.json").write_text(json.dumps(dev_genesis(CHAIN_ID, admin, validator, GENESIS_TIME_MS)))
    home = init_home(out, staging / "genesis.json", staging / "validator.json", GENESIS_TIME_MS, chain_id=CHAIN_ID)
    write_key(home.keys_dir / "admin.json", admin, "admin")
    for f in staging.iterdir():
        f.unlink()
    staging.rmdir()
    node = home.open_node()
    node.start()
    try:
        doctor, nurse = seeded("doctor"), seeded("nurse")
        enrol = "identity.enrol_member"
        blocks = [
            [sign_tx(admin, CHAIN_ID, enrol, 1, 1, {"member": doctor.public_hex, "org": "org.dev",
                                                    "roles": ["physician"]})],
            [sign_tx(seeded(f"patient-{i}"), CHAIN_ID, "identity.register_patient", 1, 1, {}) for i in range(3)],
            [sign_tx(admin, CHAIN_ID, enrol, 1, 2, {"member": nurse.public_hex, "org": "org.dev", "roles": ["nurse"]})],
            [sign_tx(admin, CHAIN_ID, "identity.revoke_member", 1, 3,
                     {"member": doctor.public_hex, "org": "org.dev", "reason": "left"})],
        ]
        for raws in blocks:  # one block each: wait for every transaction before sending the next group
            futures = [node.submit(raw) for raw in raws]
            for fut in futures:
                receipt = fut.result(timeout=30)
                assert getattr(receipt, "code", None) == 0, receipt
        print(f"height {node.head.height}, app hash {node.head.app_hash.hex()}")
    finally:
        node.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
