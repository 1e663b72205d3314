"""The records gateway on a real CometBFT network on loopback: an erasure committed through node 2
crypto-shreds the copy node 1's vault holds, and node 1's gateway refuses the record afterwards.

Two organisations, one validator node each (``careledger net``): node0 runs for ``hospital-0`` and
hosts its vault, created before the network starts with ``careledger records vault-init`` as an
operator would; its process opens the gateway over it at start-up. node1 runs for ``clinic-1`` and
hosts no vault. The patient's erasure goes to node1's HTTP API as an ordinary transaction, and is
never shown to node0's gateway: only node0's commit of the block tells it. The second erasure
follows a restart of node0's processes, with no request made to its records routes since: the
gateway is wired when the process starts, not when someone first asks for a record.

Needs the cometbft binary (scripts/install-cometbft.sh); skipped without it, except under CI=true.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from careledger.client import ClientError
from careledger.client.records import RecordsClient
from careledger.core.errors import Code
from careledger.net.cluster import LocalNetwork
from careledger.net.layout import Tuning
from support import require_cometbft, seeded_key
from support.records import OBSERVATION

pytestmark = pytest.mark.cometbft

CLI = [str(Path(sys.executable).parent / "careledger")]
HOSPITAL, CLINIC = "hospital-0", "clinic-1"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    require_cometbft()
    network = LocalNetwork.create(tmp_path_factory.mktemp("records-net") / "net", 2, chain_id="careledger-records",
                                  tuning=Tuning(timeout_commit="150ms"))
    home = network.spec.careledger_home(0)
    out = subprocess.run([*CLI, "records", "vault-init", "--org", HOSPITAL, "--home", str(home)],
                         capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stdout + out.stderr
    try:
        network.start()
        network.wait_api()
        yield network
    finally:
        network.stop()


def _rows(vault_dir: Path, record: str) -> list[tuple[bytes, bytes]]:
    conn = sqlite3.connect(vault_dir / "vault.sqlite", timeout=30)
    try:
        return [(bytes(w), bytes(c)) for w, c in
                conn.execute("SELECT wrapped_key, ciphertext FROM records WHERE record = ?", (record,))]
    finally:
        conn.close()


def _holding(vault_dir: Path, secrets: list[bytes]) -> list[str]:
    """The vault's files that still contain any of ``secrets`` (read as raw bytes, no SQLite)."""
    return [p.name for p in sorted(vault_dir.iterdir()) if p.is_file() and any(s in p.read_bytes() for s in secrets)]


def test_an_erasure_committed_through_another_node_shreds_the_custodians_copy(net: LocalNetwork) -> None:
    hospital_api, clinic_api = net.client(0), net.client(1)
    vault_dir = net.spec.careledger_home(0) / "vault" / HOSPITAL
    # the process hosts the vault it found at start-up; node1 hosts none
    [custodian] = hospital_api.request("GET", "/v1/gateway")["custodians"]
    assert custodian["org"] == HOSPITAL
    assert clinic_api.request("GET", "/v1/gateway")["custodians"] == []
    admin = net.spec.admin_key(0)
    enrolled = hospital_api.send(admin, "identity.enrol_member", 1,
                                 {"member": custodian["gateway_key"], "org": HOSPITAL, "roles": ["data_steward"]})
    assert enrolled["receipt"]["code"] == 0, enrolled
    patient = seeded_key("patient/erasure-on-cometbft")
    assert clinic_api.send(patient, "identity.register_patient", 1, {})["receipt"]["code"] == 0

    # the hospital stores a record through node0's gateway; the patient reads it there
    gateways = {HOSPITAL: net.spec.nodes[0].api_url}
    hospital = RecordsClient(hospital_api, admin, gateways=gateways)
    own = RecordsClient(hospital_api, patient, gateways=gateways)
    try:
        pseudonym = own.pseudonym
        record = hospital.store(HOSPITAL, pseudonym, OBSERVATION)["records"][0]["record"]
        [fetched] = own.read(HOSPITAL, pseudonym, [record])
        assert fetched.record == record and fetched.mode == "patient"
        [(wrapped, ciphertext)] = _rows(vault_dir, record)
        secrets = [wrapped, ciphertext[:24], ciphertext[-16:]]

        # the erasure is committed through node1, as an ordinary transaction node0's gateway never sees
        erased = clinic_api.send(patient, "records.erase", 1, {"reason": "patient_request", "record": record})
        assert erased["receipt"]["code"] == 0 and erased["receipt"]["result"]["by"] == "patient", erased
        # shredded: no file of the vault (database, write-ahead log) holds the key or ciphertext any more;
        # watched on the raw files, so that no reader of ours holds the log the shredder truncates
        net.wait("node0's vault files to lose the erased record's key and ciphertext",
                 lambda: not _holding(vault_dir, secrets), timeout=30, every=0.1)
        assert not _rows(vault_dir, record)

        # node0's gateway refuses the record from now on, and node0's ledger shows the erasure
        with pytest.raises(ClientError) as refused:
            own.read(HOSPITAL, pseudonym, [record])
        assert refused.value.code == Code.RECORD_ERASED and refused.value.http_status == 410
        [entry] = [r for r in own.index(pseudonym) if r["record"] == record]
        assert entry["status"] == "erased"

        # after node0's process restarts, its gateway is listening before anyone asks it anything
        second = hospital.store(HOSPITAL, pseudonym, OBSERVATION)["records"][0]["record"]
        [(wrapped, ciphertext)] = _rows(vault_dir, second)
        second_secrets = [wrapped, ciphertext[:24], ciphertext[-16:]]
        net.kill(0)
        net.start(0)
        net.wait_api([0])
        erased = clinic_api.send(patient, "records.erase", 1, {"reason": "patient_request", "record": second})
        assert erased["receipt"]["code"] == 0, erased
        net.wait("node0's restarted gateway to shred the record erased through node1",
                 lambda: not _holding(vault_dir, second_secrets), timeout=30, every=0.1)
        assert not _rows(vault_dir, second)
    finally:
        hospital.close()
        own.close()
