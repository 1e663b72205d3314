"""``careledger bench --workload claims``: the adjudication kernel in process, and claims end to end over HTTP.

One run, on this machine, one part after the other:

1. **kernel** — :func:`careledger.bench.claims_kernel.bench_claims_kernel`: the adjudication function alone,
   in process, on one core (the issue's target: ≥ 5,000 claims/s);
2. **end to end** — a solo node (``careledger node start`` in its own process) whose ledger already holds
   ``prior`` claims (their claim records, commitments, patient index entries and two line fingerprints
   each, written straight into the store before the node starts: building them by consensus would take
   hours). Then ``claims`` new claims go through the HTTP API exactly as officers send them, over
   ``concurrency`` pipelines (one hospital claims officer and one insurer claims officer each, so each
   key's nonces stay in order): the provider's desk prepares the FHIR Claim (commitment, fingerprints),
   the officer signs ``claims.submit`` and commits it (the Claim anchored, the claim on the ledger: its
   fingerprints checked against every prior claim's), the insurer's node fetches the claim and its
   encounter through the hospital's gateway under the patient's consent (the read audited and committed
   before release), checks and adjudicates them, and the officer's ``claims.adjudicate`` is committed
   with its package, ClaimResponse and EOB anchored. Every 20th claim re-bills the previous one's
   service: it must be flagged. Reported: claims/s, p50/p99 from the start of the submission to the
   adjudication's commit, the node's CPU per claim (its whole process tree, from ``/proc``) and the
   driver's;
3. **solo HTTP** — the same machine's solo node taking signed ``consent.grant`` transactions from the
   Go load generator (:func:`careledger.bench.http.bench_careledger`), the yardstick the claims figure
   is printed beside (skipped, with the reason, when the generator cannot be built).

The issue's targets: ≥ 500 claims/s end to end with p99 ≤ 2 s over 1,000,000 prior claims; the kernel
≥ 5,000 claims/s. A claim is five transactions (Claim anchor, submit, audit, adjudication records'
anchor, adjudicate), each committed before the next step: the figure is bounded by the node's commits
on this machine's two shared cores, which the report shows beside it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import resource
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from careledger.bench import harness
from careledger.bench.harness import BenchSetupError, Service, start_node, tree_cpu_seconds, tree_rss_bytes
from careledger.bench.solo import _percentile
from careledger.claims.content import date_of
from careledger.claims.coverage import load_plan
from careledger.claims.edits import DATA_DIR, synthetic_tables
from careledger.contracts.claims.layout import (
    claim_key,
    commitment_key,
    day_of_ms,
    fingerprint_key,
    patient_claim_key,
)
from careledger.contracts.identity import compute_pseudonym
from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.demo.consortium import create_consortium
from careledger.node.store import StateCommitment, Store
from careledger.vault.canonical import canonical_bytes, from_python, json_of_canonical
from careledger.vault.requests import authorization, sign_headers
from careledger.vault.store import Vault

CHAIN_ID = "careledger-bench-claims"
HOSPITAL, INSURER, PLAN = "st-marys", "united-health-ins", "example-ppo"
CODES = (("https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "G0438"),
         ("urn:careledger:synthetic-codes", "ZZ002"), ("urn:careledger:synthetic-codes", "ZZ005"),
         ("http://hl7.org/fhir/sid/cvx", "140"))
Progress = Callable[[str], None]


# --- the prior claims, written straight into the store ---------------------------------------------------------

def _claim_json(claim: str, patient: str, commitment: str, fps: tuple[str, str], day: int) -> bytes:
    """A paid claim's record, canonical (keys sorted, no spaces), as :class:`ClaimRecord.to_json` writes it."""
    ms = day * 86_400_000
    return (f'{{"adjudications":1,"appeals":0,"content_commitment":"{commitment}","coverage":"cov-{claim[4:]}",'
            f'"encounter":"r-{claim[4:]}00000000","end_day":{day},"fingerprints":["{fps[0]}","{fps[1]}"],'
            f'"flags":[],"id":"{claim}","insurer":"{INSURER}","lines":2,"patient":"{patient}","payments":1,'
            f'"prior_payer_claim":null,"provider":"{HOSPITAL}","replaced_by":null,"replaces":null,'
            f'"start_day":{day},"status":"paid","submitted_height":1,"submitted_ms":{ms},"type":"professional",'
            f'"updated_ms":{ms}}}').encode()


def _hex64(i: int, n: int) -> str:
    """The i-th of n values spread evenly over the 64-bit prefix space (sorted by i), padded to 64 hex."""
    return f"{(i * ((1 << 64) // max(1, n))) & ((1 << 64) - 1):016x}{i:048x}"


def _prior_rows(kind: str, count: int, day: int) -> Iterator[tuple[str, bytes, bytes]]:
    """One kind of state entry of the prior claims, in key order, with its row hash
    (:func:`careledger.node.store.row_hash`; the stored checksum is its first 8 bytes)."""
    sha = hashlib.sha256
    entry = b'{"insurer":"%s","provider":"%s"}' % (INSURER.encode(), HOSPITAL.encode())
    step, step2 = (1 << 64) // max(1, count), (1 << 64) // max(1, 2 * count)
    for i in range(count):
        claim = f"clm-{i:024x}"
        if kind == "claim":
            key = claim_key(claim)
            value = _claim_json(claim, f"pt-{i // 5:032x}", f"{i * step:016x}{i:048x}",
                                (f"{2 * i * step2:016x}{2 * i:048x}", f"{(2 * i + 1) * step2:016x}{2 * i + 1:048x}"),
                                day - 400 + i % 300)
        elif kind == "commitment":
            key, value = commitment_key(f"{i * step:016x}{i:048x}"), b'{"claim":"%s"}' % claim.encode()
        elif kind == "patient":
            key, value = patient_claim_key(f"pt-{i // 5:032x}", claim), entry
        else:
            for j in (2 * i, 2 * i + 1):
                key = fingerprint_key(f"{j * step2:016x}{j:048x}", claim)
                yield key, entry, sha(key.encode() + b"\x00" + entry).digest()
            continue
        yield key, value, sha(key.encode() + b"\x00" + value).digest()


PRIOR_DAY = 19_723  # 2024-01-01: the prior claims' services fall in the 300 days from there
CACHE_VERSION = 2  # 2: the table carries its rows' count and digest (the store's state commitment moves by them)


def default_cache_dir() -> Path:
    """Where built prior-claim tables are kept between runs: ``$XDG_CACHE_HOME/careledger``, else
    ``~/.cache/careledger``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "careledger"


def build_prior_table(path: Path, count: int, progress: Progress = lambda s: None) -> None:
    """A SQLite file with a ``state`` table holding ``count`` prior claims' entries (see
    :func:`seed_prior_claims`) and a ``summary`` row with their number and the sum of their row hashes
    mod 2^256 (what they add to the store's state commitment), written once and reused: copying it into a
    store runs at SQLite's speed."""
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(partial, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL, chk BLOB NOT NULL) WITHOUT ROWID")
        conn.execute("CREATE TABLE summary (count INTEGER NOT NULL, digest BLOB NOT NULL)")
        conn.execute("BEGIN")
        summed = [0, 0]  # rows, sum of row hashes

        def counted(rows: Iterator[tuple[str, bytes, bytes]]) -> Iterator[tuple[str, bytes, bytes]]:
            for key, value, h in rows:
                summed[0] += 1
                summed[1] += int.from_bytes(h, "big")
                yield key, value, h[:8]

        for kind in ("claim", "commitment", "fingerprint", "patient"):
            progress(f"building {count:,} prior claims (once; kept in {path.parent}): {kind} entries")
            conn.executemany("INSERT INTO state VALUES (?, ?, ?)", counted(_prior_rows(kind, count, PRIOR_DAY)))
        conn.execute("INSERT INTO summary VALUES (?, ?)", (summed[0], (summed[1] % (1 << 256)).to_bytes(32, "big")))
        conn.execute("COMMIT")
    finally:
        conn.close()
    partial.replace(path)


def seed_prior_claims(db_path: Path, count: int, progress: Progress = lambda s: None,
                      cache_dir: Path | None = None) -> tuple[float, bool]:
    """Write ``count`` paid claims of earlier patients into a node's store: claim records, commitments,
    patient index entries and two line fingerprints each (state only, with their row checksums,
    :func:`careledger.node.store.state_chk`), in the same SQLite transaction moving the store's state
    commitment by their count and digest; then the head record is written again with the new commitment,
    so the node's start-up checks (and ``careledger verify``) accept the store. The entries are built once
    into a table file under ``cache_dir`` (default :func:`default_cache_dir`) and copied from there.
    Returns the seconds the copy (and a first build) took, and whether the table was already built. The
    node must not be running."""
    began = time.perf_counter()
    table = (cache_dir or default_cache_dir()) / f"prior-claims-v{CACHE_VERSION}-{count}.sqlite"
    cached = table.is_file()
    if not cached:
        build_prior_table(table, count, progress)
    progress(f"copying {count:,} prior claims into the node's store")
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("ATTACH DATABASE ? AS prior", (str(table),))
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO main.state SELECT key, value, chk FROM prior.state ORDER BY key")
        rows, digest = conn.execute("SELECT count, digest FROM prior.summary").fetchone()
        (raw,) = conn.execute("SELECT value FROM main.meta WHERE key = 'state_commitment'").fetchone()
        moved = StateCommitment.from_json(codec.decode(raw))
        moved = moved.moved(moved.height, rows, int.from_bytes(digest, "big"))
        conn.execute("UPDATE main.meta SET value = ? WHERE key = 'state_commitment'", (codec.encode(moved.to_json()),))
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE prior")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    store = Store(db_path, create=False)
    try:
        store.head_file.write(store.head_record())
    finally:
        store.close()
    return time.perf_counter() - began, cached


# --- the end-to-end run -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClaimsBench:
    claims: int = 1_000
    prior: int = 1_000_000
    concurrency: int = 32
    patients_per_pipeline: int | None = None  # default: one patient per claim of the lane (see _setup)
    seed: int = 7
    cache_dir: Path | None = None  # where the prior claims' table is built once (default_cache_dir())


@dataclass
class Lane:
    """One pipeline: a hospital officer and an insurer officer, each key's next nonce, and its patients."""

    hospital: SigningKey
    insurer: SigningKey
    patients: list[SigningKey]
    nonces: dict[str, int]

    def nonce(self, key: SigningKey) -> int:
        n = self.nonces.get(key.public_hex, 1)
        self.nonces[key.public_hex] = n + 1
        return n


class Driver:
    """Sends the requests an officer's client sends, asynchronously, over one connection pool."""

    def __init__(self, http: httpx.AsyncClient, chain_id: str) -> None:
        self.http = http
        self.chain_id = chain_id

    async def post(self, path: str, body: bytes | dict[str, Any], sign: SigningKey | None = None) -> dict[str, Any]:
        """POST ``body`` (a signed request of ``sign``, when given: docs/protocol.md section 4.3)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        if sign is not None:
            headers |= sign_headers(sign, self.chain_id, "POST", path, content)
        response = await self.http.post(path, content=content, headers=headers)
        doc: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise BenchSetupError(f"{path}: HTTP {response.status_code} {str(doc.get('error'))[:200]}")
        return doc

    async def commit(self, lane: Lane, key: SigningKey, prepared: dict[str, Any]) -> dict[str, Any]:
        raw = sign_tx(key, self.chain_id, prepared["type"], 1, lane.nonce(key), prepared["payload"])
        done = await self.post("/v1/claims/txs", {"tx": raw.hex()})
        if done["receipt"]["code"]:
            raise BenchSetupError(f"{prepared['type']} refused: {done['receipt']['name']}")
        return done


def _claim_resource(encounter_id: str, day: int, lines: list[tuple[str, str, int]]) -> dict[str, Any]:
    items = [{"sequence": n, "productOrService": {"coding": [{"system": system, "code": code}]},
              "servicedDate": date_of(day),
              "net": {"currency": "USD", "value": {"$decimal": f"{cents // 100}.{cents % 100:02d}"}},
              **({"encounter": [{"reference": f"urn:uuid:{encounter_id}"}]} if n == 1 else {})}
             for n, (system, code, cents) in enumerate(lines, start=1)]
    return {"resourceType": "Claim", "status": "active", "use": "claim", "created": date_of(day),
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                                 "code": "professional"}]},
            "patient": {"reference": "urn:uuid:patient"}, "provider": {"reference": "urn:uuid:provider"},
            "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority",
                                     "code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "urn:uuid:coverage"}}],
            "item": items}


async def _one_claim(d: Driver, lane: Lane, patient: SigningKey, encounter: tuple[str, str], coverage: str,
                     resource_doc: dict[str, Any]) -> dict[str, Any]:
    pseudonym = compute_pseudonym(patient.public_hex)
    canonical = canonical_bytes(from_python(resource_doc))
    t0 = time.perf_counter()
    head = json.dumps({"kind": "claim.prepare", "coverage": coverage, "custodian": HOSPITAL,
                       "encounter": encounter[0], "insurer": INSURER, "patient": pseudonym}).encode()
    body = head[:-1] + b',"resource":' + json_of_canonical(canonical) + b"}"
    prepared = await d.post("/v1/claims/prepare", body, sign=lane.hospital)
    submitted = await d.commit(lane, lane.hospital, prepared)
    t1 = time.perf_counter()
    claim = submitted["receipt"]["result"]["claim"]
    record = submitted["records"][0]["record"]
    read_body = json.dumps({"kind": "read", "custodian": HOSPITAL, "emergency": False, "patient": pseudonym,
                            "purpose": "HPAYMT", "records": sorted({record, encounter[0]})}).encode()
    read = {"authorization": authorization(lane.insurer, d.chain_id, "POST", "/v1/gateway/read", read_body),
            "body": read_body.decode()}
    intake = await d.post("/v1/claims/intake", {"claim": claim, "reads": [read]})
    await d.commit(lane, lane.insurer, intake)
    t2 = time.perf_counter()
    return {"claim": claim, "flags": submitted["receipt"]["result"]["flags"], "outcome": intake["outcome"],
            "submit_s": t1 - t0, "adjudicate_s": t2 - t1, "total_s": t2 - t0, "done": t2}


async def _lane(d: Driver, lane: Lane, work: list[tuple[SigningKey, tuple[str, str], str, dict[str, Any]]],
                out: list[dict[str, Any]], errors: Counter[str]) -> None:
    for patient, encounter, coverage, doc in work:
        try:
            out.append(await _one_claim(d, lane, patient, encounter, coverage, doc))
        except (BenchSetupError, httpx.HTTPError) as exc:
            errors[str(exc)[:120]] += 1


def _batch(http: httpx.Client, raws: list[bytes]) -> None:
    for i in range(0, len(raws), 1000):
        res = http.post("/v1/txs/batch", params={"wait": "commit", "timeout": 120},
                        content=json.dumps([r.hex() for r in raws[i:i + 1000]]),
                        headers={"content-type": "application/json"}, timeout=180)
        doc = res.json()
        bad = [r for r in doc.get("results", []) if r.get("status") != "committed" or r["receipt"]["code"] != 0]
        if res.status_code != 200 or bad:
            raise BenchSetupError(f"setting up the claims benchmark failed: {str(bad or doc)[:300]}")


def _setup(node: Service, home: Any, admins: dict[str, SigningKey], cfg: ClaimsBench, day: int,
           progress: Progress) -> tuple[list[Lane], dict[str, str], dict[str, list[tuple[str, str, int]]]]:
    """Officers, patients, the plan, the edit table, coverages, consents and encounters (not timed)."""
    rng = random.Random(cfg.seed)
    # Every service line is dated today (a plan version cannot take effect before it is registered), so a
    # patient billed twice that day for the same code is a duplicate (OA-18): by default each patient of a
    # lane has one claim, and only the deliberate re-bills repeat a line.
    patients = cfg.patients_per_pipeline or max(1, -(-cfg.claims // cfg.concurrency))
    lanes = [Lane(SigningKey(rng.randbytes(32)), SigningKey(rng.randbytes(32)),
                  [SigningKey(rng.randbytes(32)) for _ in range(patients)], {})
             for _ in range(cfg.concurrency)]
    dr = SigningKey(rng.randbytes(32))
    gateways = {org: Vault(home.path / "vault" / org).gateway_key.public_hex for org in (HOSPITAL, INSURER)}
    nonces: dict[str, int] = {}

    def tx(key: SigningKey, tx_type: str, payload: dict[str, Any]) -> bytes:
        n = nonces.get(key.public_hex, 1)
        nonces[key.public_hex] = n + 1
        return sign_tx(key, CHAIN_ID, tx_type, 1, n, payload)

    with httpx.Client(base_url=node.url, timeout=120) as http:
        progress("setting up: officers, patients, plan, edit table")
        raws = [tx(admins[org], "identity.enrol_member", {"member": gateways[org], "org": org,
                                                          "roles": ["data_steward"]}) for org in gateways]
        raws.append(tx(admins[HOSPITAL], "identity.enrol_member", {"member": dr.public_hex, "org": HOSPITAL,
                                                                   "roles": ["physician"]}))
        for lane in lanes:
            raws.append(tx(admins[HOSPITAL], "identity.enrol_member", {
                "member": lane.hospital.public_hex, "org": HOSPITAL, "roles": ["claims_officer"]}))
            raws.append(tx(admins[INSURER], "identity.enrol_member", {
                "member": lane.insurer.public_hex, "org": INSURER, "roles": ["claims_officer"]}))
            raws += [tx(p, "identity.register_patient", {}) for p in lane.patients]
        _batch(http, raws)
        t = synthetic_tables()
        raws = [tx(lanes[0].insurer, "claims.register_plan", {
            "effective_day": day, "insurer": INSURER, "plan": PLAN, "version": 1,
            "rules": load_plan(DATA_DIR / "example-plan.json").document}),
            tx(admins[INSURER], "claims.propose_table", {"digest": t.digest, "effective_day": t.effective_day,
                                                          "name": t.name, "source": "synthetic", "version": t.version})]
        raws += [tx(admins[org], "claims.vote_table", {"approve": True, "name": t.name, "version": t.version})
                 for org in ("st-marys", "riverside-clinic", "high-street-pharmacy", "acme-pharma", "medi-distrib")]
        _batch(http, raws)
        progress("setting up: coverages and consents")
        raws, coverage_of = [], {}
        for lane in lanes:
            for p in lane.patients:
                pseudonym = compute_pseudonym(p.public_hex)
                raws.append(tx(lane.insurer, "claims.register_coverage", {
                    "beneficiary": pseudonym, "commitment": hashlib.sha256(p.public_hex.encode()).hexdigest(),
                    "end_day": None, "insurer": INSURER, "order": 1, "plan": PLAN, "start_day": day - 30}))
                raws.append(tx(p, "consent.grant", {"grantee": {"id": INSURER, "kind": "org"}, "patient": pseudonym,
                                                    "provision": "permit", "purposes": ["HPAYMT"]}))
        _batch(http, raws)
        for lane in lanes:
            for p in lane.patients:
                pseudonym = compute_pseudonym(p.public_hex)
                query = json.dumps({"kind": "claims.coverages", "patient": pseudonym}).encode()
                doc = http.post("/v1/claims/coverages", content=query, headers={
                    "content-type": "application/json",
                    **sign_headers(p, CHAIN_ID, "POST", "/v1/claims/coverages", query)}).json()
                coverage_of[pseudonym] = doc["coverages"][0]["id"]
        progress("setting up: encounters in the hospital's vault")
        per_patient = max(1, -(-cfg.claims // (cfg.concurrency * patients)))
        encounters: dict[str, list[tuple[str, str, int]]] = {}
        for lane in lanes:
            for p in lane.patients:
                pseudonym = compute_pseudonym(p.public_hex)
                ids = [(f"enc-{pseudonym[3:15]}-{k:04d}", day) for k in range(per_patient)]
                bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
                    "resourceType": "Encounter", "id": i, "status": "finished",
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "period": {"start": f"{date_of(d)}T09:00:00Z", "end": f"{date_of(d)}T10:00:00Z"}}}
                    for i, d in ids]}
                canonical = canonical_bytes(from_python(bundle))
                head = json.dumps({"kind": "store", "custodian": HOSPITAL, "patient": pseudonym}).encode()
                body = head[:-1] + b',"resource":' + json_of_canonical(canonical) + b"}"
                signed = sign_headers(dr, CHAIN_ID, "POST", "/v1/gateway/store", body)
                stored = http.post("/v1/gateway/store", content=body,
                                   headers={"content-type": "application/json", **signed})
                if stored.status_code != 200:
                    raise BenchSetupError(f"storing encounters failed: {stored.text[:300]}")
                encounters[pseudonym] = [(r["record"], i, d) for r, (i, d) in zip(stored.json()["records"], ids,
                                                                                   strict=True)]
    for lane in lanes:
        lane.nonces = {k: v for k, v in nonces.items() if k in (lane.hospital.public_hex, lane.insurer.public_hex)}
    return lanes, coverage_of, encounters


def _work(lanes: list[Lane], coverage_of: dict[str, str], encounters: dict[str, list[tuple[str, str, int]]],
          claims: int, seed: int) -> tuple[list[list[tuple[SigningKey, tuple[str, str], str, dict[str, Any]]]], int]:
    """Each lane's claims, its patients in turn (a patient's claims in one lane, so one after the other);
    every 20th claim of a lane re-bills the lane's previous claim. Returns the work and how many re-bill."""
    rng = random.Random(seed + 1)
    work: list[list[tuple[SigningKey, tuple[str, str], str, dict[str, Any]]]] = [[] for _ in lanes]
    used: dict[str, int] = {}
    duplicates = 0
    for n in range(claims):
        lane_no, k = n % len(lanes), n // len(lanes)
        lane, items = lanes[lane_no], work[lane_no]
        if k % 20 == 19:
            items.append(items[-1])
            duplicates += 1
            continue
        patient = lane.patients[k % len(lane.patients)]
        pseudonym = compute_pseudonym(patient.public_hex)
        encounter = encounters[pseudonym][used.get(pseudonym, 0) % len(encounters[pseudonym])]
        used[pseudonym] = used.get(pseudonym, 0) + 1
        lines = [(*CODES[c], rng.randrange(5_000, 90_000)) for c in sorted(rng.sample(range(len(CODES)), 2))]
        record, rid, served = encounter
        items.append((patient, (record, rid), coverage_of[pseudonym], _claim_resource(rid, served, lines)))
    return work, duplicates


@contextmanager
def _patient_start(seconds: float) -> Iterator[None]:
    """Give the node longer to answer: before it serves, it checks every row of a store that now holds
    the prior claims (:func:`careledger.node.startup.open_store`), which on a loaded machine can take
    more than the harness's usual wait."""
    usual = harness.READY_TIMEOUT_S
    harness.READY_TIMEOUT_S = seconds
    try:
        yield
    finally:
        harness.READY_TIMEOUT_S = usual


@contextmanager
def _workdir(home: Path | None) -> Iterator[Path]:
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        yield home
        return
    with tempfile.TemporaryDirectory(prefix="careledger-bench-claims-") as tmp:
        yield Path(tmp)


def bench_claims_http(cfg: ClaimsBench = ClaimsBench(), home: Path | None = None,
                      progress: Progress = lambda s: None) -> dict[str, Any]:
    """Claims end to end through the HTTP API of a solo node holding ``cfg.prior`` prior claims."""
    with _workdir(home) as workdir:
        now_ms = int(time.time() * 1000)
        day = day_of_ms(now_ms)
        consortium = create_consortium(workdir / "claims", now_ms, chain_id=CHAIN_ID)
        for org in (HOSPITAL, INSURER):
            Vault.create(consortium.home.path / "vault" / org, org).close()
        seed_s, cached = (seed_prior_claims(consortium.home.db_path, cfg.prior, progress, cfg.cache_dir)
                          if cfg.prior else (0.0, False))
        progress("starting the node (it checks every stored row first)")
        with _patient_start(max(harness.READY_TIMEOUT_S, cfg.prior / 1_000)):
            node = start_node(consortium.home.path, workdir)
        try:
            lanes, coverage_of, encounters = _setup(node, consortium.home, consortium.admins, cfg, day, progress)
            work, duplicates = _work(lanes, coverage_of, encounters, cfg.claims, cfg.seed)
            progress(f"{cfg.claims:,} claims over {cfg.concurrency} pipelines")
            results: list[dict[str, Any]] = []
            errors: Counter[str] = Counter()

            async def run() -> float:
                pool = cfg.concurrency * 2
                limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
                async with httpx.AsyncClient(base_url=node.url, timeout=120, limits=limits) as http:
                    d = Driver(http, CHAIN_ID)
                    began = time.perf_counter()
                    await asyncio.gather(*(_lane(d, lane, w, results, errors) for lane, w in zip(
                        lanes, work, strict=True)))
                    return began

            cpu0, own0 = tree_cpu_seconds(node.proc.pid), resource.getrusage(resource.RUSAGE_SELF)
            began = asyncio.run(run())
            cpu1, own1 = tree_cpu_seconds(node.proc.pid), resource.getrusage(resource.RUSAGE_SELF)
            rss = tree_rss_bytes(node.proc.pid)
        finally:
            node.stop()
    done = len(results)
    seconds = max(1e-9, max((r["done"] for r in results), default=began) - began)
    totals = [r["total_s"] * 1000 for r in results]
    return {
        "claims": cfg.claims, "adjudicated": done, "errors": dict(errors), "prior_claims": cfg.prior,
        "prior_seed_s": round(seed_s, 1), "prior_table_cached": cached, "node_start_s": round(node.started_s, 1),
        "concurrency": cfg.concurrency, "claims_per_s": round(done / seconds, 1),
        "p50_ms": round(_percentile(totals, 0.50), 1), "p99_ms": round(_percentile(totals, 0.99), 1),
        "submit_p50_ms": round(_percentile([r["submit_s"] * 1000 for r in results], 0.50), 1),
        "adjudicate_p50_ms": round(_percentile([r["adjudicate_s"] * 1000 for r in results], 0.50), 1),
        "txs_per_claim": 5, "node_cpu_ms_per_claim": round((cpu1 - cpu0) * 1000 / max(1, done), 2),
        "driver_cpu_ms_per_claim": round((own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) * 1000
                                         / max(1, done), 2),
        "node_rss_mb": round(rss / 2**20, 1), "outcomes": dict(Counter(r["outcome"] for r in results)),
        "flagged": sum(1 for r in results if r["flags"]), "duplicates_sent": duplicates,
    }


def bench_claims(claims: int = 1_000, prior: int = 1_000_000, concurrency: int = 32, kernel_claims: int = 10_000,
                 solo_txs: int = 5_000, seed: int = 7, progress: Progress = lambda s: None) -> dict[str, Any]:
    """The whole claims benchmark: the kernel in process, claims end to end over HTTP, and the solo HTTP
    tx/s of the same machine (see the module docstring). One JSON-ready object."""
    from careledger.bench.claims_kernel import bench_claims_kernel

    progress("the adjudication kernel, in process")
    kernel = bench_claims_kernel(claims=kernel_claims, coverages=max(10, kernel_claims // 20), seed=seed,
                                 progress=progress)
    e2e = bench_claims_http(ClaimsBench(claims=claims, prior=prior, concurrency=concurrency, seed=seed),
                            progress=progress)
    solo: dict[str, Any] | None
    try:
        solo = bench_solo_http(solo_txs, seed, progress)
    except BenchSetupError as exc:
        solo = {"skipped": str(exc)}
    solo_rate = solo.get("tx_per_s") if solo else None
    return {
        "workload": "claims", "cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
        "kernel": kernel, "end_to_end": e2e, "solo_http": solo,
        "claims_per_s": e2e["claims_per_s"], "p99_ms": e2e["p99_ms"],
        "kernel_claims_per_s": kernel["adjudications_per_s"],
        "claims_tx_per_s": round(e2e["claims_per_s"] * e2e["txs_per_claim"], 1),
        "ratio_claims_tx_vs_solo_tx": None if not solo_rate else round(
            e2e["claims_per_s"] * e2e["txs_per_claim"] / solo_rate, 3),
        "targets": {"claims_per_s_ge_500": e2e["claims_per_s"] >= 500, "p99_le_2000_ms": e2e["p99_ms"] <= 2000,
                    "prior_claims_ge_1m": e2e["prior_claims"] >= 1_000_000,
                    "kernel_ge_5000_per_s": kernel["adjudications_per_s"] >= 5000,
                    "every_duplicate_flagged": e2e["flagged"] >= e2e["duplicates_sent"]},
    }


def bench_solo_http(txs: int, seed: int, progress: Progress) -> dict[str, Any]:
    """The solo node's committed tx/s over HTTP with the Go load generator (a short peak phase)."""
    from careledger.bench.harness import LoadShape, ensure_loadgen
    from careledger.bench.http import HttpBench, bench_careledger

    loadgen = ensure_loadgen()
    cfg = HttpBench(txs=txs, seed=seed, half_seconds=2.0, warmup=min(500, txs // 5), shape=LoadShape())
    with tempfile.TemporaryDirectory(prefix="careledger-bench-solo-") as tmp:
        result = bench_careledger(cfg, loadgen, Path(tmp), progress)
    peak = result["peak"]
    return {"tx_per_s": peak["tx_per_s"], "p99_ms": peak["p99_ms"], "cpu_us_per_tx": peak["cpu_us_per_tx"],
            "txs": txs, "workload": "consent.grant"}


def format_table(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The report as (measure, value) rows for ``careledger bench`` without --json."""
    e2e, kernel, solo = report["end_to_end"], report["kernel"], report["solo_http"] or {}
    return [
        ("end to end: claims per second", f"{e2e['claims_per_s']:,}"),
        ("end to end: p50 / p99 ms (submit → adjudicated)", f"{e2e['p50_ms']:,} / {e2e['p99_ms']:,}"),
        ("end to end: claims adjudicated / errors", f"{e2e['adjudicated']:,} / {sum(e2e['errors'].values())}"),
        ("end to end: duplicates sent / claims flagged", f"{e2e['duplicates_sent']} / {e2e['flagged']}"),
        ("end to end: node CPU ms per claim (5 txs)", f"{e2e['node_cpu_ms_per_claim']}"),
        ("prior claims on the ledger (written in s)", f"{e2e['prior_claims']:,} ({e2e['prior_seed_s']} s)"),
        ("claims as tx/s (5 per claim) vs solo HTTP tx/s", f"{report['claims_tx_per_s']:,} vs "
                                                            f"{solo.get('tx_per_s', solo.get('skipped'))}"),
        ("kernel: adjudications/s (CPU s)",
         f"{kernel['adjudications_per_s']:,} ({kernel['adjudications_per_cpu_s']:,})"),
        ("targets", json.dumps(report["targets"])),
    ]


__all__ = ["BenchSetupError", "ClaimsBench", "bench_claims", "bench_claims_http", "format_table", "seed_prior_claims"]
