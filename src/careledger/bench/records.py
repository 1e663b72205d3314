"""``careledger bench --workload records``: import throughput, cross-node fetch latency, consent-check cost.

One run, on this machine:

1. **import**: both Synthea bundles stored and anchored through a custodian's gateway over HTTP, once
   one after another, then ``rounds`` times with ``concurrency`` requests in flight (as several
   clerks or an import job would send them) — FHIR resources validated, encrypted, stored and
   anchored (committed) per second;
2. **fetch**: a clinic physician reads single records from the hospital's gateway over real HTTP on
   loopback, each with the consent check, the audit entry and the client's commitment check against
   the ledger anchor: p50 / p99 latency;
3. **consent check**: :func:`careledger.contracts.consent.evaluate_access` over a real SQLite state
   view as one patient's consents grow 1 → 1,000, and as *other* patients' consents grow to
   ``other_consents`` (default 1,000,000). That state is written straight through the store's commit
   path (no transactions: building it by consensus would take the whole run); the check is the real one.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from careledger.api.records import RecordsServices
from careledger.api.server import serve_in_thread
from careledger.client import Client
from careledger.client.records import RecordsClient
from careledger.contracts import consent
from careledger.contracts.base import Signer
from careledger.contracts.consent import ConsentGrantee, ConsentRecord, consent_key
from careledger.contracts.identity import compute_pseudonym
from careledger.contracts.records import HeadRecord
from careledger.core import codec
from careledger.core.block import Header
from careledger.core.crypto import SigningKey
from careledger.demo.consortium import create_consortium
from careledger.node.store import Store
from careledger.samples import synthea_bundles
from careledger.vault.store import Vault


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _consent(patient: str, cid: str, org: str) -> bytes:
    return codec.encode(ConsentRecord(
        id=cid, patient=patient, grantee=ConsentGrantee("org", org), provision="permit", purposes=("TREAT",),
        resource_types=("Observation",), records=(), period=None, data_period=None, status="active",
        granted_by="00" * 32, granted_by_kind="patient", granted_height=1, granted_ms=0).to_json())


def consent_check_cost(workdir: Path, other_consents: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Microseconds per :func:`evaluate_access` as the patient's own and other patients' consents grow."""
    store = Store(workdir / "consents.sqlite")
    height = 0

    def commit(changes: dict[str, bytes | None]) -> None:
        nonlocal height
        height += 1
        header = Header("bench", height, height, "00" * 32, "00" * 32, "00" * 32, "00" * 32, "00" * 32, 0)
        store.commit_block(header, b"", [], [], changes)

    target = "pt-" + "a" * 32
    requester = Signer(key="b" * 64, kind="member", org="riverside-clinic", roles=("physician",), active=True)
    head = HeadRecord(pseudonym=target, custodian="st-marys", type="Observation", version=1, created_ms=5,
                      time_ms=5, status="active")

    def measure(n: int = 400) -> float:
        view = store.view()
        start = time.perf_counter()
        for _ in range(n):
            consent.evaluate_access(view, requester, target, "r-" + "0" * 32, head, "TREAT", 10)
        return (time.perf_counter() - start) / n * 1e6

    own: dict[str, float] = {}
    have = 0
    # the matching consent sorts last, so every check scans all of the patient's consents
    commit({consent_key(target, "cns-" + "f" * 24): _consent(target, "cns-" + "f" * 24, "riverside-clinic")})
    have = 1
    for n in (1, 10, 100, 1000):
        commit({consent_key(target, f"cns-{i:024x}"): _consent(target, f"cns-{i:024x}", "uni-research")
                for i in range(have - 1, n - 1)})
        have = n
        own[str(n)] = round(measure(), 1)
        progress(f"consent check with {n} own consents: {own[str(n)]} µs")
    others: dict[str, float] = {}
    done, step = 0, 50_000
    for goal in (0, 10_000, 100_000, other_consents):
        while done < goal:
            batch = min(step, goal - done)
            commit({consent_key(f"pt-{(done + i):032x}", f"cns-{(done + i):024x}"):
                    _consent(f"pt-{(done + i):032x}", f"cns-{(done + i):024x}", "riverside-clinic")
                    for i in range(batch)})
            done += batch
        others[str(goal)] = round(measure(), 1)
        progress(f"consent check (1,000 own) with {goal:,} other patients' consents: {others[str(goal)]} µs")
    store.close()
    return {"consent_check_us_by_own_consents": own, "consent_check_us_by_other_consents": others}


def _import(ledger: Client, registrar: SigningKey, url: str, patients: list[SigningKey], bundles: list[bytes],
            concurrency: int) -> tuple[int, float, list[tuple[SigningKey, list[str]]]]:
    """Store one bundle per patient through the gateway, ``concurrency`` requests in flight (one client
    each); returns (resources stored and anchored, seconds, each patient's Observation record ids)."""
    clients = [RecordsClient(ledger, registrar, gateways={"st-marys": url}) for _ in range(concurrency)]
    local = threading.local()

    def one(i: int) -> tuple[SigningKey, list[dict[str, Any]]]:
        if not hasattr(local, "client"):
            local.client = clients.pop()
        result = local.client.store("st-marys", compute_pseudonym(patients[i].public_hex), bundles[i % len(bundles)])
        return patients[i], result["records"]

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(len(patients))))
    seconds = time.perf_counter() - start
    for c in clients:
        c.close()
    stored = sum(len(records) for _, records in results)
    return stored, seconds, [(p, [r["record"] for r in records if r["type"] == "Observation"])
                             for p, records in results]


def bench_records(rounds: int = 4, fetches: int = 500, other_consents: int = 1_000_000, home: Path | None = None,
                  progress: Callable[[str], None] = lambda s: None, concurrency: int = 4) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="careledger-bench-records-")) if home is None else home
    consortium = create_consortium(workdir / "node", int(time.time() * 1000), chain_id="careledger-bench")
    node = consortium.home.open_node()
    node.start()
    server = serve_in_thread(node)
    ledger = Client(server.url)
    try:
        vault = Vault.create(consortium.home.path / "vault" / "st-marys", "st-marys")
        gateway_key = vault.gateway_key.public_hex
        vault.close()
        admin, clinic_admin = consortium.admin("st-marys"), consortium.admin("riverside-clinic")
        registrar, physician = SigningKey.generate(), SigningKey.generate()
        ledger.send(admin, "identity.enrol_member", 1, {"member": gateway_key, "org": "st-marys",
                                                       "roles": ["data_steward"]})
        ledger.send(admin, "identity.enrol_member", 1, {"member": registrar.public_hex, "org": "st-marys",
                                                       "roles": ["registrar"]})
        ledger.send(clinic_admin, "identity.enrol_member", 1, {"member": physician.public_hex,
                                                              "org": "riverside-clinic", "roles": ["physician"]})
        bundles = [p.read_bytes() for p in synthea_bundles()]
        patients = [SigningKey.generate() for _ in range((rounds + 1) * len(bundles) + 1)]
        for p in patients:
            ledger.send(p, "identity.register_patient", 1, {})
        progress("warming up (FHIR models, connections): one bundle, not timed")
        _import(ledger, registrar, server.url, patients[-1:], bundles, 1)
        patients = patients[:-1]
        progress(f"importing {len(bundles)} Synthea bundles, one after another")
        seq_stored, seq_seconds, _ = _import(ledger, registrar, server.url, patients[:len(bundles)], bundles, 1)
        progress(f"sequential: {seq_stored} resources in {seq_seconds:.2f} s")
        progress(f"importing {len(patients) - len(bundles)} Synthea bundles, {concurrency} at a time")
        stored, import_seconds, imported = _import(ledger, registrar, server.url, patients[len(bundles):], bundles,
                                                   concurrency)
        progress(f"imported {stored} resources in {import_seconds:.2f} s")
        patient, records = imported[0]
        own = RecordsClient(ledger, patient)
        own.grant(own.pseudonym, "org", "riverside-clinic", ["TREAT"], resource_types=["Observation"])
        clinic = RecordsClient(ledger, physician, gateways={"st-marys": server.url})
        gateway = server.services.get(RecordsServices).gateway  # opened when the server started
        audit_wait = gateway.audit_wait

        def fetch_latencies() -> list[float]:
            out = []
            for i in range(fetches):
                t = time.perf_counter()
                clinic.read("st-marys", own.pseudonym, [records[i % len(records)]], "TREAT")
                out.append((time.perf_counter() - t) * 1000)
            return out

        latencies = fetch_latencies()  # the node's audit_wait setting ("committed" by default)
        other = "admitted" if audit_wait == "committed" else "committed"
        gateway.audit_wait = other  # the alternative, measured in the same run for the trade-off
        try:
            other_latencies = fetch_latencies()
        finally:
            gateway.audit_wait = audit_wait
        progress(f"fetch with audit {other}: p50 {statistics.median(other_latencies):.2f} ms, "
                 f"p99 {_pct(other_latencies, 0.99):.2f} ms")
        progress(f"fetch with audit {audit_wait}: p50 {statistics.median(latencies):.2f} ms, "
                 f"p99 {_pct(latencies, 0.99):.2f} ms")
    finally:
        ledger.close()
        server.stop()
        node.close()
    cost = consent_check_cost(workdir, other_consents, progress)
    return {
        "import_resources": stored, "import_seconds": round(import_seconds, 3),
        "import_resources_per_s": round(stored / import_seconds, 1), "import_concurrency": concurrency,
        "import_sequential_resources": seq_stored, "import_sequential_seconds": round(seq_seconds, 3),
        "import_sequential_resources_per_s": round(seq_stored / seq_seconds, 1),
        "fetches": fetches, "fetch_p50_ms": round(statistics.median(latencies), 2),
        "fetch_p99_ms": round(_pct(latencies, 0.99), 2), "fetch_audit_wait": audit_wait,
        f"fetch_audit_{other}_p50_ms": round(statistics.median(other_latencies), 2),
        f"fetch_audit_{other}_p99_ms": round(_pct(other_latencies, 0.99), 2),
        "fetch_note": "single-record read over HTTP loopback: signed request, consent check, decrypt, audit tx "
                      "committed (or admitted, per audit_wait) before release, anchor query and commitment check "
                      "by the client",
        **cost,
        "targets": {"import_resources_per_s": 1000, "fetch_p99_ms": 50},
    }


__all__ = ["bench_records", "consent_check_cost"]
