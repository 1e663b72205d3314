"""``careledger node start --log-format json --log-level DEBUG`` as a real process, through a flow like the
demo's: a hospital stores a patient's Synthea record, the patient consents, a clinic reads (granted,
denied and refused reads), a pharmacy scans an unknown pack (a supply alert), transactions are
refused. Then:

* every line the node logged is one JSON object with ``time``, ``level``, ``logger`` and ``message``,
  and requests are logged by route template;
* no line carries the patient's pseudonym or any of her clinical content (names, birth date,
  identifiers, address, the content of the records read), no key material (seeds, the vault's
  organisation key), no salt, and no request body (signatures, signed request envelopes);
* ``/metrics`` counts the gateway's reads by outcome, the alert and the refusals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from careledger.client import Client
from careledger.client.records import RecordsClient
from careledger.client.supply import SupplyClient
from careledger.core.tx import sign_tx
from careledger.node.home import Home
from careledger.vault.store import Vault
from support import seeded_key
from support.records import SYNTHEA_FILES

BIN = Path(sys.executable).with_name("careledger")
HEX128 = re.compile(r"[0-9a-f]{128}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "the node did not become ready"
        time.sleep(0.2)


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value (keys and values)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_a_node_logs_no_phi_no_keys_and_no_request_bodies(node_home: Home, consortium: Any, tmp_path: Path) -> None:
    home = Path(node_home.path)
    vault = Vault.create(home / "vault" / "hospital", "hospital")
    gateway_key, org_key_file = vault.gateway_key, home / "vault" / "hospital" / "org_key.json"
    vault.close()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = tmp_path / "node.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen([str(BIN), "node", "start", "--home", str(home), "--api", f"127.0.0.1:{port}",
                                 "--log-format", "json", "--log-level", "DEBUG"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                env={**os.environ, "COLUMNS": "300"})
    dr_a, dr_b, insurer = seeded_key("member/dr_a"), seeded_key("member/dr_b"), seeded_key("member/insurer_x")
    alice = seeded_key("patient/alice")
    try:
        _wait_ready(url, proc)
        ledger = Client(url)
        for admin, member, org, roles in ((consortium.admin("hospital"), gateway_key, "hospital", ["data_steward"]),
                                          (consortium.admin("hospital"), dr_a, "hospital", ["physician"]),
                                          (consortium.admin("clinic"), dr_b, "clinic", ["physician"]),
                                          (consortium.admin("insurer"), insurer, "insurer", ["claims_officer"])):
            result = ledger.send(admin, "identity.enrol_member", 1, {"member": member.public_hex, "org": org,
                                                                     "roles": roles})
            assert result["receipt"]["code"] == 0, result
        assert ledger.send(alice, "identity.register_patient", 1, {})["receipt"]["code"] == 0
        hospital = RecordsClient(ledger, dr_a, gateways={"hospital": url})
        patient = RecordsClient(ledger, alice, gateways={"hospital": url})
        clinic = RecordsClient(ledger, dr_b, gateways={"hospital": url})
        payer = RecordsClient(ledger, insurer, gateways={"hospital": url})
        bundle = json.loads(SYNTHEA_FILES[0].read_text())
        stored = hospital.store("hospital", patient.pseudonym, SYNTHEA_FILES[0].read_bytes())
        assert len(stored["records"]) > 100
        patient.grant(patient.pseudonym, "org", "clinic", ["TREAT"], resource_types=["Observation"])
        listed = clinic.index(patient.pseudonym, "TREAT")
        observations = [r["record"] for r in listed if r["type"] == "Observation"][:5]
        encounter = next(r["record"] for r in stored["records"] if r["type"] == "Encounter")
        fetched = clinic.read("hospital", patient.pseudonym, [*observations, encounter], "TREAT")
        assert len(fetched) == 5  # the encounter is denied: the consent covers observations only
        try:
            payer.read("hospital", patient.pseudonym, observations[:1], "HPAYMT")
            raise AssertionError("the insurer has no consent")
        except Exception as exc:
            assert "CONSENT" in str(exc)
        # the pharmacy scans a pack of an unregistered product; a replayed transaction is refused
        with SupplyClient(url) as supply:
            scan = supply.verify_scan(consortium.admin("pharmacy"), gtin="09506000134352", serial="FAKE1")
            assert scan["receipt"]["code"] == 0
            assert supply.verify(gtin="09506000134352", serial="FAKE1")["result"] == "NOT VERIFIED"
        replay = sign_tx(alice, ledger.status()["chain_id"], "identity.register_patient", 1, 1, {})
        assert httpx.post(f"{url}/v1/txs", content=replay, headers={"content-type": "application/json"}
                          ).status_code == 409
        time.sleep(0.3)  # the audit entries commit
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    # what the node logged: JSON lines only
    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    assert lines, "the node logged nothing"
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    routes = {r.get("route") for r in records if r["logger"] == "careledger.api.access"}
    assert {"/v1/gateway/read", "/v1/gateway/store", "/v1/accounts/{pubkey}/nonce", "/v1/txs"} <= routes, routes
    text = log_file.read_text()
    # what must never be there
    secrets = {"pseudonym": patient.pseudonym}
    for name, key in (("dr_a", dr_a), ("dr_b", dr_b), ("alice", alice), ("gateway", gateway_key),
                      ("hospital admin", consortium.admin("hospital")), ("validator", consortium.validator)):
        secrets[f"seed of {name}"] = key.seed.hex()
    secrets["organisation key"] = json.loads(org_key_file.read_text())["key"]
    person = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    secrets["family name"] = person["name"][0]["family"]
    secrets["given name"] = person["name"][0]["given"][0]
    secrets["birth date"] = person["birthDate"]
    secrets["address"] = person["address"][0]["line"][0]
    for ident in person.get("identifier", []):
        secrets[f"identifier {ident.get('system', '')}"] = ident["value"]
    for f in fetched:
        secrets[f"salt of {f.record}"] = f.salt.hex()
        secrets[f"record id {f.record}"] = f.record
        for s in _strings(json.loads(f.resource_json())):
            if len(s) >= 12 and not s.startswith("http"):  # codes' displays, texts, references
                secrets[f"content of {f.record}: {s[:20]}"] = s
    leaked = sorted(what for what, value in secrets.items() if value and value in text)
    assert not leaked, leaked
    assert not HEX128.search(text), "a signature (or a seed pair) is in the log"
    for envelope in (r'"sig"\s*:', r'"request"\s*:\s*\{', r'"resource"\s*:', r"resourceType", r'"payload"\s*:'):
        assert not re.search(envelope, text), f"a request body is in the log ({envelope})"
    # the metrics saw the same flow
    assert re.search(r'^careledger_gateway_reads_total\{outcome="granted"\} 5\.0$', metrics, re.M), metrics
    assert re.search(r'^careledger_gateway_reads_total\{outcome="denied"\} 1\.0$', metrics, re.M)
    assert re.search(r'^careledger_gateway_reads_total\{outcome="refused"\} 1\.0$', metrics, re.M)
    assert re.search(r'^careledger_supply_alerts_raised_total\{kind="unknown_product"\} 1\.0$', metrics, re.M)
    assert re.search(r'^careledger_tx_refused_total\{code="303",name="DUPLICATE_TX"\} 1\.0$', metrics, re.M)
    assert patient.pseudonym not in metrics
