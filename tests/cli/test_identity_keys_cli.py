"""``careledger identity rotate-key`` and the recovery commands, against a real node over real HTTP.

A recovery's completion needs 72 hours of block time, which a live node's clock does not give a test:
the contract tests (tests/contracts/identity/test_identity_keys.py) and the vectors complete one; here
the command reaches the node and is refused with RECOVERY_NOT_READY.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from careledger.api.server import BackgroundServer, serve_in_thread
from careledger.cli.main import main
from careledger.client import Client
from careledger.contracts import identity
from careledger.keys import write_key
from careledger.node.home import Home
from support import Consortium, seeded_key

DOCTOR, DOCTOR_NEW = seeded_key("cli-keys/doctor"), seeded_key("cli-keys/doctor-new")
PATIENT, PATIENT_NEW, DELEGATE = seeded_key("cli-keys/patient"), seeded_key("cli-keys/new"), seeded_key("cli-keys/d")


@pytest.fixture
def api(node: Any) -> Iterator[BackgroundServer]:
    server = serve_in_thread(node)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], api: BackgroundServer, node_home: Home) -> Any:
    for name, key in (("doctor", DOCTOR), ("doctor-new", DOCTOR_NEW), ("patient", PATIENT),
                      ("patient-new", PATIENT_NEW), ("delegate", DELEGATE)):
        write_key(node_home.keys_dir / f"{name}.json", key, name)

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main(["--json", *argv, "--home", str(node_home.path), "--url", api.url])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        code = info.value.code
        return (code if isinstance(code, int) else 0), captured.out, captured.err

    return run


def test_rotate_key_then_the_old_key_is_refused(cli: Any, api: BackgroundServer, consortium: Consortium) -> None:
    client = Client(api.url)
    assert client.send(consortium.admin("hospital"), "identity.enrol_member", 1, {
        "member": DOCTOR.public_hex, "org": "hospital", "roles": ["physician"]})["receipt"]["code"] == 0
    status, out, err = cli("identity", "rotate-key", "doctor-new", "--as", "doctor")
    assert status == 0, err
    assert json.loads(out)["receipt"]["result"] == {"identity": DOCTOR.public_hex, "retired": DOCTOR.public_hex,
                                                    "signing_key": DOCTOR_NEW.public_hex}
    status, out, _ = cli("identity", "whois", DOCTOR_NEW.public_hex)
    info = json.loads(out)
    assert (info["identity"], info["active"]) == (DOCTOR.public_hex, True)
    status, out, _ = cli("identity", "rotate-key", "patient-new", "--as", "doctor")
    assert status != 0 and json.loads(out)["error"]["name"] == "SIGNER_REVOKED"
    # an admin rotates through governance: refused at admission with its code
    status, out, _ = cli("identity", "rotate-key", "patient-new", "--as", "hospital-admin")
    assert status != 0 and json.loads(out)["error"]["name"] == "KEY_NOT_ROTATABLE"


def test_recovery_commands(cli: Any, api: BackgroundServer, consortium: Consortium) -> None:
    client = Client(api.url)
    pseudonym = identity.compute_pseudonym(PATIENT.public_hex)
    for key in (PATIENT, DELEGATE):
        assert client.send(key, "identity.register_patient", 1, {})["receipt"]["code"] == 0
    assert client.send(consortium.admin("hospital"), "records.anchor", 1, {"custodian": "hospital", "anchors": [
        {"commitment": hashlib.sha256(b"cli").hexdigest(), "pseudonym": pseudonym, "record": "r-" + "7" * 32,
         "type": "Observation", "version": 1}]})["receipt"]["code"] == 0
    appointed = client.send(PATIENT, "consent.appoint_delegate", 1, {"delegate": DELEGATE.public_hex})
    assert appointed["receipt"]["code"] == 0

    status, out, err = cli("identity", "recovery-proof", pseudonym, "--as", "patient-new")
    assert status == 0, err
    proof = json.loads(out)
    assert proof["new_key"] == PATIENT_NEW.public_hex
    status, out, err = cli("identity", "propose-recovery", pseudonym, proof["new_key"], "--proof", proof["proof"],
                           "--as", "hospital-admin")
    assert status == 0, err
    rid = json.loads(out)["receipt"]["result"]["recovery"]
    status, out, err = cli("identity", "approve-recovery", pseudonym, rid, "--as", "delegate")
    assert status == 0, err
    assert json.loads(out)["receipt"]["result"]["status"] == "approved"
    status, out, _ = cli("identity", "complete-recovery", pseudonym, rid, "--as", "patient-new")
    assert status == 3 and json.loads(out)["receipt"]["code"] == 1016  # RECOVERY_NOT_READY: the delay runs
    status, out, err = cli("identity", "cancel-recovery", pseudonym, rid, "--as", "patient")
    assert status == 0, err
    assert json.loads(out)["receipt"]["result"]["status"] == "cancelled"
    # she sees every step in her access log
    status, out, err = cli("audit", "log", "--as", "patient")
    assert status == 0, err
    assert [e["mode"] for e in json.loads(out) if e["purpose"] == "PATADMIN"] \
        == ["custodian", "delegate", "patient"]
