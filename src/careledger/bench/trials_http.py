"""``careledger bench --workload trials``: trial visits anchored through the HTTP API, against the node's
own ``consent.grant`` rate in the same run, and the database lock at a small and a large tree.

One run, one node (real home, real SQLite, ``careledger node start`` in its own process), one load
generator (the Go ``careledger-loadgen`` of :mod:`careledger.bench.http`, pre-signed requests,
commits counted from the blocks by a store watcher):

1. **set-up** (not timed): the demo consortium; a trial coordinator, investigators and data stewards
   at two sites (St Mary's and Riverside); ``trials`` open-label trials registered with both sites;
   ``subjects`` patients per trial consenting under their study keys (HKDF of their own seeds) and
   enrolled, half at each site; one more trial with one subject and 10 visits for the small lock;
2. **baseline**: ``consent.grant`` at peak, ``baseline_txs`` transactions from 50 patients: the solo
   node's HTTP tx/s on this ledger, measured twice, before and after the anchoring;
3. **anchoring**: ``trials * subjects * visits`` visits (1M at the issue's size), ``visits_per_tx``
   per ``trials.record_visits`` (1 by default: one visit, one transaction, like one grant), signed by
   the sites' data stewards (``signers`` lanes), sent at peak in chunks of ``chunk`` transactions; the
   rate per chunk shows whether a visit costs more as the trees grow;
4. **lock**: ``trials.lock`` executed by the real executor over the node's committed SQLite state
   (best of 200, never committed), on the 10-anchor trial and on the largest, then committed through
   the API; the proof route's first (tree rebuilt from state) and second (cached) answer for a visit
   of the largest trial.

The targets: anchoring tx/s at least 0.8 of the baseline's (the mean of its two phases), and the lock's cost
at the largest tree within twice the 10-anchor one's. On a shared 2-core machine, compare the ratios.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from careledger.bench.harness import (
    BenchSetupError,
    LoadShape,
    Phase,
    StoreWatcher,
    drive,
    ensure_loadgen,
    start_node,
    tree_rss_bytes,
)
from careledger.bench.http import CHAIN_ID, Patients, _register, _wait_mempool_empty, _workdir
from careledger.chain.executor import BlockExecution, Chain, check_stateless
from careledger.chain.registry import default_registry
from careledger.contracts.research.study_keys import derive_study_key, study_pseudonym
from careledger.core.block import BlockEnv
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.demo.consortium import create_consortium
from careledger.node.store import Store

SPONSOR, SITES = "uni-research", ("st-marys", "riverside-clinic")
INVESTIGATORS_PER_SITE = 8
SMALL_VISITS = 10
Progress = Callable[[str], None]


def _key(label: str, seed: int) -> SigningKey:
    return SigningKey(hashlib.sha256(f"careledger-bench-trials/{seed}/{label}".encode()).digest())


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TrialsHttpBench:
    """One run's size and load shape."""

    trials: int = 100
    subjects: int = 1000
    visits: int = 10
    visits_per_tx: int = 1
    baseline_txs: int = 20_000
    signers: int = 50  # data stewards, half at each site: the anchoring's lanes
    chunk: int = 100_000
    shape: LoadShape = field(default_factory=LoadShape)
    seed: int = 7
    stall_s: float = 10.0

    def __post_init__(self) -> None:
        if min(self.trials, self.subjects, self.visits, self.visits_per_tx, self.baseline_txs, self.chunk) < 1:
            raise ValueError("trials, subjects, visits, visits per transaction, baseline and chunk must be positive")
        if self.subjects < len(SITES) or not 2 <= self.signers <= 50 or self.visits_per_tx > 256:
            raise ValueError("at least 2 subjects per trial, 2 to 50 signers, at most 256 visits per transaction")

    @classmethod
    def parse_size(cls, size: str, **kwargs: Any) -> TrialsHttpBench:
        """``TRIALSxSUBJECTSxVISITS`` (``100x1000x10``), optionally ``/VISITS_PER_TX``."""
        try:
            dims, _, per_tx = size.partition("/")
            trials, subjects, visits = (int(x) for x in dims.lower().split("x"))
            return cls(trials=trials, subjects=subjects, visits=visits, visits_per_tx=int(per_tx or 1), **kwargs)
        except ValueError as exc:
            raise ValueError(f"size {size!r}: give TRIALSxSUBJECTSxVISITS[/VISITS_PER_TX] ({exc})") from None

    @property
    def anchors(self) -> int:
        return self.trials * self.subjects * self.visits


class Signers:
    """Keys with their next nonces (every key of the run signs consecutive nonces from 1)."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def tx(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> bytes:
        nonce = self.next.get(key.public_hex, 1)
        self.next[key.public_hex] = nonce + 1
        return sign_tx(key, CHAIN_ID, tx_type, 1, nonce, payload)


def _commit_batches(http: httpx.Client, raws: list[bytes], what: str) -> list[dict[str, Any]]:
    """Submit in batches of 1,000 (array order kept), wait for commits; every receipt must be code 0."""
    results: list[dict[str, Any]] = []
    for i in range(0, len(raws), 1000):
        res = http.post("/v1/txs/batch", params={"wait": "commit", "timeout": 120},
                        content=json.dumps([r.hex() for r in raws[i:i + 1000]]),
                        headers={"Content-Type": "application/json"})
        doc = res.json()
        bad = [r for r in doc.get("results", []) if r.get("status") != "committed" or r["receipt"]["code"] != 0]
        if res.status_code != 200 or bad or doc.get("rejected"):
            raise BenchSetupError(f"{what} failed: {str(bad[:1] or doc)[:400]}")
        results += doc["results"]
    return results


def _hashes(raws: list[bytes]) -> list[str]:
    return [hashlib.sha256(r).hexdigest() for r in raws]


def _dataset(title: str, target: int) -> dict[str, Any]:
    return {
        "funding_sources": ["Benchmark fund"], "primary_sponsor": "University Research Institute",
        "public_contact": {"name": "Trial office", "email": "trials@uni-research.example.org"},
        "scientific_contact": {"name": "Chief investigator", "email": "ci@uni-research.example.org"},
        "public_title": title, "scientific_title": f"{title}: an open-label benchmark trial",
        "countries": ["GB"], "conditions": [{"text": "Knee osteoarthritis"}],
        "arms": [{"label": "a", "type": "experimental", "description": "a"},
                 {"label": "b", "type": "active_comparator", "description": "b"}],
        "interventions": [{"name": "A", "type": "other", "description": "a", "arms": ["a"]},
                          {"name": "B", "type": "other", "description": "b", "arms": ["b"]}],
        "eligibility": {"inclusion": ["Adults"], "sex": "all"},
        "design": {"type": "interventional", "allocation": "non_randomised", "masking": "none",
                   "assignment": "parallel", "purpose": "treatment", "phase": "phase_3"},
        "first_enrolment": {"date": "2030-01-01", "type": "anticipated"}, "sample_size": {"target": target},
        "recruitment_status": "recruiting",
        "primary_outcomes": [{"id": "P1", "measure": "Pain", "method": "NRS", "time_frame": "12 weeks"}],
        "ethics_reviews": [{"status": "approved", "committee": "REC", "contact": "rec@example.org",
                            "approval_date": "2029-10-01", "reference": "REC-1"}],
        "completion": {"primary": {"date": "2031-06-30", "type": "anticipated"},
                       "study": {"date": "2031-12-31", "type": "anticipated"}},
        "ipd_sharing": {"plan": "no"}}


@dataclass
class World:
    """The benchmark's parties and trials, as the set-up committed them."""

    coordinator: SigningKey
    investigators: dict[str, list[SigningKey]]
    stewards: dict[str, list[SigningKey]]
    trials: list[str]
    subjects: dict[str, list[tuple[str, str]]]  # trial -> [(subject, site)]
    small: str
    signers: Signers


def _drive_all(loadgen: Path, node: Any, watcher: StoreWatcher, requests: list[tuple[int, str, bytes]],
               workdir: Path, tag: str, shape: LoadShape, cfg: TrialsHttpBench, settled: Callable[[], bool]) -> Phase:
    """A set-up phase through the generator: every transaction must commit with code 0."""
    hashes = _hashes([r for _, _, r in requests])
    phase = drive(loadgen, node, requests, hashes, None, watcher, shape, workdir, tag, cfg.stall_s, settled=settled)
    if phase.committed != len(requests) or phase.failed_receipts or phase.refused:
        raise BenchSetupError(f"set-up phase {tag}: {phase.committed} of {len(requests)} committed, "
                              f"{phase.failed_receipts} failed, refused {phase.refused}")
    return phase


def set_up(cfg: TrialsHttpBench, http: httpx.Client, loadgen: Path, node: Any, watcher: StoreWatcher,
           admins: dict[str, SigningKey], workdir: Path, settled: Callable[[], bool], progress: Progress) -> World:
    """Members, trials, sites, consents and enrolments (committed; not timed)."""
    s = Signers()
    coordinator = _key("coordinator", cfg.seed)
    investigators = {site: [_key(f"investigator/{site}/{i}", cfg.seed) for i in range(INVESTIGATORS_PER_SITE)]
                     for site in SITES}
    stewards = {site: [_key(f"steward/{site}/{i}", cfg.seed) for i in range(cfg.signers // len(SITES))]
                for site in SITES}
    members = [s.tx(admins[SPONSOR], "identity.enrol_member", {"member": coordinator.public_hex, "org": SPONSOR,
                                                                 "roles": ["trial_coordinator"]})]
    for site in SITES:
        members += [s.tx(admins[site], "identity.enrol_member", {"member": k.public_hex, "org": site,
                                                                 "roles": ["physician"]}) for k in investigators[site]]
        members += [s.tx(admins[site], "identity.enrol_member", {"member": k.public_hex, "org": site,
                                                                 "roles": ["data_steward"]}) for k in stewards[site]]
    _commit_batches(http, members, "enrolling the members")
    progress(f"set-up: registering {cfg.trials + 1} trials with 2 sites each")
    registrations = [s.tx(coordinator, "trials.register", {
        "dataset": _dataset(f"Benchmark trial {t}", max(cfg.subjects, 1)),
        "protocol": {"document_hash": _h(f"protocol {t}"), "consent_form_hash": _h("form")}})
        for t in range(cfg.trials + 1)]
    trials = [f"trl-{h[:24]}" for h in _hashes(registrations)]
    _commit_batches(http, registrations, "registering the trials")
    ethics = {"status": "approved", "committee": "REC", "contact": "rec", "approval_date": "2029-10-01"}
    _commit_batches(http, [s.tx(coordinator, "trials.add_site", {
        "trial": trial, "org": site, "ethics": ethics,
        "investigators": [{"key": k.public_hex, "role": "principal_investigator" if i == 0 else "sub_investigator"}
                          for i, k in enumerate(investigators[site])]}) for trial in trials for site in SITES],
        "adding the sites")
    small, trials = trials[-1], trials[:-1]
    progress(f"set-up: deriving {cfg.trials * cfg.subjects + 1:,} study keys and signing their consents")
    subjects: dict[str, list[tuple[str, str]]] = {}
    consents: list[tuple[int, str, bytes]] = []
    for t, trial in enumerate([*trials, small]):
        count = 1 if trial == small else cfg.subjects
        keys = [derive_study_key(_key(f"patient/{t}/{i}", cfg.seed).seed, trial) for i in range(count)]
        subjects[trial] = [(study_pseudonym(k), SITES[i % len(SITES)]) for i, k in enumerate(keys)]
        consents += [(len(consents) % 64, "/v1/txs", s.tx(k, "trials.consent", {
            "trial": trial, "protocol_version": 1, "consent_form_hash": _h("form")})) for k in keys]
    in_order = LoadShape(connections=cfg.shape.connections, lane_depth=1, max_seconds=cfg.shape.max_seconds)
    progress(f"set-up: {len(consents):,} consents through the API")
    _drive_all(loadgen, node, watcher, consents, workdir, "setup-consents", in_order, cfg, settled)
    enrolments: list[tuple[int, str, bytes]] = []
    lanes = {k.public_hex: n for n, k in enumerate(k for site in SITES for k in investigators[site])}
    for trial in [*trials, small]:
        for i, (subject, site) in enumerate(subjects[trial]):
            key = investigators[site][i // len(SITES) % INVESTIGATORS_PER_SITE]
            enrolments.append((lanes[key.public_hex], "/v1/txs", s.tx(key, "trials.enrol", {
                "trial": trial, "site": site, "subject": subject})))
    progress(f"set-up: {len(enrolments):,} enrolments through the API")
    _drive_all(loadgen, node, watcher, enrolments, workdir, "setup-enrolments", in_order, cfg, settled)
    world = World(coordinator, investigators, stewards, trials, subjects, small, s)
    [(small_subject, small_site)] = subjects[small]
    _commit_batches(http, [s.tx(stewards[small_site][0], "trials.record_visits", {
        "trial": small, "site": small_site, "visits": [{
            "subject": small_subject, "visit": f"v{v}",
            "resources": [{"type": "Observation", "commitment": _h(f"small {v}")}]}]}) for v in range(SMALL_VISITS)],
        "anchoring the small trial's visits")
    return world


Visit = tuple[int, SigningKey, dict[str, Any]]
"""One anchoring transaction before signing: its lane, the steward that signs it, its payload."""


def anchoring_payloads(cfg: TrialsHttpBench, world: World) -> Iterator[list[Visit]]:
    """The anchoring transactions in chunks of ``cfg.chunk``: visit by visit, trial by trial, subject by
    subject, each site's visits spread over its stewards in turn; a transaction carries ``visits_per_tx``
    visits of one trial at one site."""
    lanes = {k.public_hex: n for n, k in enumerate(k for site in SITES for k in world.stewards[site])}
    turn = {site: 0 for site in SITES}
    chunk: list[Visit] = []
    for v in range(cfg.visits):
        for trial in world.trials:
            for site in SITES:
                mine = [subject for subject, at in world.subjects[trial] if at == site]
                for i in range(0, len(mine), cfg.visits_per_tx):
                    steward = world.stewards[site][turn[site] % len(world.stewards[site])]
                    turn[site] += 1
                    chunk.append((lanes[steward.public_hex], steward, {"trial": trial, "site": site, "visits": [
                        {"subject": subject, "visit": f"v{v}", "resources": [
                            {"type": "Observation", "commitment": _h(f"{trial}/{subject}/{v}")}]}
                        for subject in mine[i:i + cfg.visits_per_tx]]}))
                    if len(chunk) == cfg.chunk:
                        yield chunk
                        chunk = []
    if chunk:
        yield chunk


def _resync(http: httpx.Client, signers: Signers, keys: list[SigningKey]) -> None:
    """Take each key's next nonce from the node (refused transactions leave gaps in the local count)."""
    for key in keys:
        signers.next[key.public_hex] = int(http.get(f"/v1/accounts/{key.public_hex}/nonce").json()["next"])


def anchor_all(cfg: TrialsHttpBench, http: httpx.Client, loadgen: Path, node: Any, watcher: StoreWatcher,
               world: World, workdir: Path, settled: Callable[[], bool], progress: Progress
               ) -> tuple[list[Phase], list[Phase]]:
    """Every visit anchored: each chunk signed (nonces from the node) and sent at peak; a transaction the
    node refused (a nonce that overtook its predecessor) is signed again and sent in a later run, each
    steward's nonces in order, until every visit is anchored. Returns the chunks' runs (the measured
    rate) and the retries' runs (small runs, dominated by their start: reported apart)."""
    stewards = [k for site in SITES for k in world.stewards[site]]
    in_order = LoadShape(connections=cfg.shape.connections, lane_depth=1, max_seconds=cfg.shape.max_seconds)
    phases: list[Phase] = []
    retries: list[Phase] = []
    sent = 0
    for chunk in anchoring_payloads(cfg, world):
        pending, attempt = chunk, 0
        while pending:
            if attempt > 5:
                raise BenchSetupError(f"{len(pending)} anchoring transactions still refused after 5 retries")
            _resync(http, world.signers, stewards)
            raws = [world.signers.tx(steward, "trials.record_visits", payload) for _, steward, payload in pending]
            hashes = _hashes(raws)
            progress(f"anchoring: transactions {sent:,} to {sent + len(pending):,}"
                     + (f" (retry {attempt} of the refused)" if attempt else ""))
            tag = f"anchor-{len(phases) + len(retries)}"
            shape = cfg.shape if attempt == 0 else in_order  # a retry keeps each steward's nonces in order
            phase = drive(loadgen, node, [(lane, "/v1/txs", raw) for (lane, _, _), raw in zip(pending, raws,
                                                                                              strict=True)],
                          hashes, None, watcher, shape, workdir, tag, cfg.stall_s, settled=settled)
            (workdir / f"{tag}.bodies").unlink(missing_ok=True)
            (retries if attempt else phases).append(phase)
            _wait_mempool_empty(http)
            if any(watcher.seen[h][1] for h in hashes if h in watcher.seen):
                raise BenchSetupError("an anchoring transaction was committed with a failed receipt")
            if attempt == 0:
                sent += len(pending)
            pending = [item for item, h in zip(pending, hashes, strict=True) if h not in watcher.seen]
            attempt += 1
    return phases, retries


def lock_cost_us(db_path: Path, chain: Chain, key: SigningKey, trial: str, nonce: int, repeat: int = 200
                 ) -> tuple[float, dict[str, Any]]:
    """``trials.lock`` of ``trial`` executed ``repeat`` times by the real executor over the node's committed
    SQLite state (never committed): best µs, and the receipt's result."""
    store = Store(db_path, create=False)
    try:
        head = store.head()
        header = store.block(head.height)[0]
        env = BlockEnv(CHAIN_ID, head.height + 1, header.time_ms + 1, key.public_hex)
        checked = check_stateless(chain, sign_tx(key, CHAIN_ID, "trials.lock", 1, nonce, {"trial": trial}))
        best, result = float("inf"), None
        for _ in range(repeat):
            run = BlockExecution(chain, store.view(), env, head.app_hash)
            start = time.thread_time()
            receipt = run.add(checked)
            best = min(best, time.thread_time() - start)
            if receipt.code != 0:
                raise BenchSetupError(f"lock of {trial} failed: {receipt.message}")
            result = receipt.result
        assert isinstance(result, dict)
        return best * 1e6, result
    finally:
        store.close()


def _summary(phases: list[Phase]) -> dict[str, Any]:
    """Several generator runs as one phase: committed over the summed seconds, CPU per committed tx."""
    committed = sum(p.committed - p.failed_receipts for p in phases)
    seconds = sum(p.seconds for p in phases)
    node_cpu = sum(p.cpu_s.get("careledger", 0.0) for p in phases)
    refused: dict[str, int] = {}
    for p in phases:
        for k, n in p.refused.items():
            refused[k] = refused.get(k, 0) + n
    return {"runs": len(phases), "sent": sum(p.sent for p in phases), "committed": committed,
            "failed_receipts": sum(p.failed_receipts for p in phases), "refused": refused,
            "seconds": round(seconds, 2), "tx_per_s": round(committed / max(seconds, 1e-9), 1),
            "cpu_us_per_tx": round(node_cpu * 1e6 / max(1, committed), 1),
            "p50_ms": max(p.p50_ms for p in phases), "p99_ms": max(p.p99_ms for p in phases)}


def bench_trials_http(cfg: TrialsHttpBench = TrialsHttpBench(), home: Path | None = None,
                      progress: Progress = lambda s: None) -> dict[str, Any]:
    """The whole trials benchmark (see the module docstring); one JSON-able object."""
    loadgen = ensure_loadgen()
    began = time.monotonic()
    with _workdir(home) as workdir:
        now_ms = int(time.time() * 1000)
        consortium = create_consortium(workdir / "careledger", now_ms, chain_id=CHAIN_ID)
        node = start_node(consortium.home.path, workdir)
        try:
            with httpx.Client(base_url=node.url, timeout=180) as http:
                watcher = StoreWatcher(consortium.home.db_path).start_at(int(http.get("/v1/status").json()["height"]))

                def settled() -> bool:
                    status = http.get("/v1/status").json()
                    return int(status["mempool"]) == 0 and watcher.height >= int(status["height"])

                try:
                    world = set_up(cfg, http, loadgen, node, watcher, consortium.admins, workdir, settled, progress)
                    setup_s = time.monotonic() - began
                    patients = Patients.make(50, cfg.seed)
                    _register(http, patients.registrations())
                    expiry = now_ms + 365 * 86_400_000

                    def baseline(tag: str) -> Phase:
                        progress(f"baseline ({tag}): {cfg.baseline_txs:,} consent.grant at peak")
                        reqs, hashes = patients.grants(max(1, -(-cfg.baseline_txs // 50)), expiry)
                        phase = drive(loadgen, node, reqs, hashes, None, watcher, cfg.shape, workdir,
                                      f"baseline-{tag}", cfg.stall_s, settled=settled)
                        _wait_mempool_empty(http)
                        patients.resync(http)
                        return phase

                    before = baseline("before")
                    chunks, retries = anchor_all(cfg, http, loadgen, node, watcher, world, workdir, settled,
                                                 progress)
                    anchored = int(http.get(f"/v1/trials/{world.trials[-1]}/anchors").json()["size"])
                    if anchored != cfg.subjects * cfg.visits:
                        raise BenchSetupError(f"the last trial holds {anchored} anchors, not "
                                              f"{cfg.subjects * cfg.visits}")
                    after = baseline("after")
                    progress("lock: executing trials.lock over the committed store")
                    height = int(http.get("/v1/status").json()["height"])
                    lock = _lock_phase(cfg, http, consortium.home.db_path, Chain(consortium.home.genesis(),
                                                                                 default_registry()), world)
                finally:
                    watcher.stop()
            rss_mb = round(tree_rss_bytes(node.proc.pid) / 2**20, 1)
        finally:
            node.stop()
        db_mb = round(consortium.home.db_path.stat().st_size / 2**20, 1)
    anchoring = _summary(chunks)
    base = {"before": asdict(before), "after": asdict(after)}
    base_rate = (before.tx_per_s + after.tx_per_s) / 2
    ratio = round(anchoring["tx_per_s"] / max(base_rate, 1e-9), 3)
    report = {
        "engine": "solo", "via": "http", "workload": "trials", "cores": os.cpu_count(),
        "size": {"trials": cfg.trials, "subjects": cfg.subjects, "visits": cfg.visits,
                 "visits_per_tx": cfg.visits_per_tx, "anchors": cfg.anchors},
        "connections": cfg.shape.connections, "lane_depth": cfg.shape.lane_depth, "signers": cfg.signers,
        "setup_s": round(setup_s, 1), "baseline": base, "baseline_tx_per_s": round(base_rate, 1),
        "anchoring": anchoring, "anchors_per_s": round(anchoring["tx_per_s"] * cfg.visits_per_tx, 1),
        "retries": {"runs": len(retries), "sent": sum(p.sent for p in retries),
                    "committed": sum(p.committed for p in retries)},
        "cpu_ratio_vs_consent_grant": round(anchoring["cpu_us_per_tx"] / max(1e-9, (
            before.cpu_us_per_tx + after.cpu_us_per_tx) / 2), 3),
        "anchoring_chunks": [{"txs": p.sent, "tx_per_s": p.tx_per_s, "p99_ms": p.p99_ms, "cpu_share": p.cpu_share}
                             for p in chunks],
        "ratio_vs_consent_grant": ratio, "lock": lock, "height": height, "db_mb": db_mb, "node_rss_mb": rss_mb,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    report["targets"] = {"anchoring_ge_0.8_of_consent_grant": ratio >= 0.8,
                         "lock_large_within_2x_of_small": lock["ratio_large_vs_small"] <= 2.0}
    return report


def _lock_phase(cfg: TrialsHttpBench, http: httpx.Client, db_path: Path, chain: Chain, world: World
                ) -> dict[str, Any]:
    """The lock's executor cost at the 10-anchor trial and at the largest, then both locks committed, then the
    proof route's first and cached answer on the large trial."""
    large = world.trials[0]
    coordinator = world.coordinator
    nonce = world.signers.next[coordinator.public_hex]
    small_us, small = lock_cost_us(db_path, chain, coordinator, world.small, nonce)
    large_us, large_result = lock_cost_us(db_path, chain, coordinator, large, nonce)
    committed = _commit_batches(http, [world.signers.tx(coordinator, "trials.lock", {"trial": t})
                                       for t in (world.small, large)], "locking")
    roots = [r["receipt"]["result"]["root"] for r in committed]
    if roots != [small["root"], large_result["root"]]:
        raise BenchSetupError("the committed lock roots differ from the executed ones")
    subject = world.subjects[large][0][0]
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        proof = http.get(f"/v1/trials/{large}/anchors/{subject}/v0")
        timings.append(round((time.perf_counter() - start) * 1000, 1))
        if proof.status_code != 200 or proof.json()["root"] != large_result["root"]:
            raise BenchSetupError(f"the proof route answered {proof.status_code}: {proof.text[:200]}")
    return {"lock_us": {str(small["size"]): round(small_us, 1), str(large_result["size"]): round(large_us, 1)},
            "ratio_large_vs_small": round(large_us / max(small_us, 1e-9), 2),
            "frontier_entries": {str(small["size"]): int(small["size"]).bit_count(),
                                 str(large_result["size"]): int(large_result["size"]).bit_count()},
            "proof_ms": {"first (tree rebuilt from state)": timings[0], "cached": timings[1]},
            "note": "executor cost of trials.lock over the node's committed SQLite state, best of 200 (thread CPU)"}


def format_table(report: dict[str, Any]) -> str:
    """The report as lines of text (the CLI's output without --json)."""
    size, a = report["size"], report["anchoring"]
    lines = [f"{size['trials']} trials x {size['subjects']} subjects x {size['visits']} visits = {size['anchors']:,} "
             f"anchors, {size['visits_per_tx']} per transaction; set-up {report['setup_s']} s"]
    for tag, p in report["baseline"].items():
        lines.append(f"consent.grant {tag:<6} {p['tx_per_s']:>9,.1f} tx/s  {p['cpu_us_per_tx']:>7,.0f} µs CPU/tx  "
                     f"p99 {p['p99_ms']:>7.1f} ms  committed {p['committed']:,}  refused {p['refused']}")
    lines.append(f"record_visits        {a['tx_per_s']:>9,.1f} tx/s  {a['cpu_us_per_tx']:>7,.0f} µs CPU/tx  "
                 f"p99 {a['p99_ms']:>7.1f} ms  committed {a['committed']:,}  refused {a['refused']}  "
                 f"({report['anchors_per_s']:,.1f} anchors/s)")
    lines.append("per chunk: " + ", ".join(f"{c['tx_per_s']:,.0f}" for c in report["anchoring_chunks"]) + " tx/s; "
                 f"refused and sent again: {report['retries']['sent']:,} in {report['retries']['runs']} runs")
    lock = report["lock"]
    lines.append(f"lock: {lock['lock_us']} µs (large/small {lock['ratio_large_vs_small']}); "
                 f"proof {lock['proof_ms']} ms")
    lines.append(f"ratio vs consent.grant: {report['ratio_vs_consent_grant']} (CPU per transaction: "
                 f"{report['cpu_ratio_vs_consent_grant']}); targets: {report['targets']}")
    return "\n".join(lines)


__all__ = ["TrialsHttpBench", "anchor_all", "anchoring_payloads", "bench_trials_http", "format_table",
           "lock_cost_us"]
