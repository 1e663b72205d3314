"""Trials kernel benchmark, in process: the cost of anchoring a visit, and of the database lock at 10 vs 1M anchors.

Everything runs through the real executor (``BlockExecution``: signature check, payload parsing,
the contract's authorize and apply, staged writes) over an in-memory state, on one thread:

1. **visit anchoring**: ``trials.record_visits`` transactions of one visit each, executed in blocks,
   microseconds per transaction; beside them, in the same run, ``records.anchor`` transactions of one
   anchor each (the existing per-record anchoring) as the baseline, and the contract's own share
   (authorize + apply, without the transaction path). The same is measured again with the trial's
   anchor tree at ``anchors`` leaves, to show that a visit costs the same in a large tree;
2. **lock**: ``trials.lock`` executed on a tree of 10 leaves and of ``anchors`` leaves (default 1M):
   the frontier the ledger keeps has ``popcount(n)`` entries, so the lock reads O(log n) bytes and
   hashes at most ``bit_length(n) - 1`` times. The 1M-leaf tree is built with the same
   ``frontier_append`` the contract uses (every leaf appended; its time is reported) and written
   into the state directly, as the records benchmark writes its million consents: building it by
   consensus would take the whole run.

``bench_trials_kernel`` returns one JSON-able dict; the lead wires it as ``careledger bench --workload
trials-kernel``. Timings on a shared 2-core machine are noisy: compare the ratios.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from careledger.chain.executor import BlockExecution, Chain, check_stateless, genesis_app_hash, genesis_state
from careledger.chain.registry import default_registry
from careledger.contracts import trials as trials_contract
from careledger.contracts.base import TxContext
from careledger.contracts.identity import compute_pseudonym, resolve_signer
from careledger.contracts.research.study_keys import compute_study_pseudonym, derive_study_key
from careledger.contracts.trials.anchors import frontier_append, frontier_root
from careledger.contracts.trials.layout import TreeRecord, tree_key
from careledger.core import codec
from careledger.core.block import BlockEnv, Receipt
from careledger.core.crypto import SigningKey
from careledger.core.genesis import parse_genesis
from careledger.core.merkle import leaf_hash
from careledger.core.state import MemoryState, Overlay
from careledger.core.tx import sign_tx

CHAIN_ID = "careledger-bench-trials"
GENESIS_MS = 1_700_000_000_000
_ORGS = (("research", "research"), ("hospital", "hospital"))


def _key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"careledger-bench/" + label.encode()).digest())


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _InProcessChain:
    """Blocks executed by the real executor over a MemoryState (what both engines drive)."""

    def __init__(self) -> None:
        self.admins = {org: _key(f"admin/{org}") for org, _ in _ORGS}
        self.validator = _key("validator")
        genesis = parse_genesis({
            "chain_id": CHAIN_ID, "crypto_suite": "ed25519-sha256", "genesis_time_ms": GENESIS_MS,
            "organisations": [{"admins": [self.admins[o].public_hex], "api": None, "id": o, "name": o, "roles": [r]}
                              for o, r in _ORGS],
            "validators": [{"org": "hospital", "power": 10, "pub_key": self.validator.public_hex}],
            "params": {"max_block_txs": 100_000}})
        self.chain = Chain(genesis, default_registry())
        changes = genesis_state(genesis)
        self.state = MemoryState()
        self.state.apply(changes)
        self.app_hash = genesis_app_hash(genesis, changes)
        self.height = 0
        self.nonces: dict[str, int] = {}

    def tx(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> bytes:
        nonce = self.nonces.get(key.public_hex, 0) + 1
        self.nonces[key.public_hex] = nonce
        return sign_tx(key, CHAIN_ID, tx_type, 1, nonce, payload)

    def env(self) -> BlockEnv:
        return BlockEnv(CHAIN_ID, self.height + 1, GENESIS_MS + (self.height + 1) * 1000, self.validator.public_hex)

    def block(self, raws: list[bytes]) -> tuple[list[Receipt], float]:
        """Execute and commit one block; returns the receipts and the seconds spent executing."""
        run = BlockExecution(self.chain, self.state, self.env(), self.app_hash)
        start = time.thread_time()
        receipts = [run.add(check_stateless(self.chain, raw)) for raw in raws]
        seconds = time.thread_time() - start
        result = run.finish()
        self.state.apply(result.changes)
        self.app_hash = result.app_hash
        self.height += 1
        return receipts, seconds

    def ok(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> Any:
        receipts, _ = self.block([self.tx(key, tx_type, payload)])
        if receipts[0].code != 0:
            raise RuntimeError(f"{tx_type} failed: {receipts[0].code} {receipts[0].message}")
        return receipts[0].result


def _dataset() -> dict[str, Any]:
    return {
        "funding_sources": ["Benchmark fund"], "primary_sponsor": "Research organisation",
        "public_contact": {"name": "Trial office", "email": "trials@research.example.org"},
        "scientific_contact": {"name": "Chief investigator", "email": "ci@research.example.org"},
        "public_title": "Benchmark trial", "scientific_title": "Benchmark trial of anchoring cost",
        "countries": ["GB"], "conditions": [{"text": "Knee osteoarthritis"}],
        "arms": [{"label": "a", "type": "experimental", "description": "a"},
                 {"label": "b", "type": "active_comparator", "description": "b"}],
        "interventions": [{"name": "A", "type": "other", "description": "a", "arms": ["a"]},
                          {"name": "B", "type": "other", "description": "b", "arms": ["b"]}],
        "eligibility": {"inclusion": ["Adults"], "sex": "all"},
        "design": {"type": "interventional", "allocation": "non_randomised", "masking": "none",
                   "assignment": "parallel", "purpose": "treatment", "phase": "phase_3"},
        "first_enrolment": {"date": "2023-11-20", "type": "anticipated"}, "sample_size": {"target": 100_000},
        "recruitment_status": "recruiting",
        "primary_outcomes": [{"id": "P1", "measure": "Pain", "method": "NRS", "time_frame": "12 weeks"}],
        "ethics_reviews": [{"status": "approved", "committee": "REC", "contact": "rec@example.org",
                            "approval_date": "2023-10-01"}],
        "completion": {"primary": {"date": "2024-06-30", "type": "anticipated"},
                       "study": {"date": "2024-12-31", "type": "anticipated"}},
        "ipd_sharing": {"plan": "no"}}


def _members(chain: _InProcessChain) -> tuple[SigningKey, SigningKey, SigningKey]:
    """The research organisation's trial coordinator, the hospital's investigator and its data steward."""
    coordinator, investigator, steward = _key("coordinator"), _key("investigator"), _key("steward")
    chain.ok(chain.admins["research"], "identity.enrol_member",
             {"member": coordinator.public_hex, "org": "research", "roles": ["trial_coordinator"]})
    chain.ok(chain.admins["hospital"], "identity.enrol_member",
             {"member": investigator.public_hex, "org": "hospital", "roles": ["physician"]})
    chain.ok(chain.admins["hospital"], "identity.enrol_member",
             {"member": steward.public_hex, "org": "hospital", "roles": ["data_steward", "registrar"]})
    return coordinator, investigator, steward


def _trial(chain: _InProcessChain, coordinator: SigningKey, investigator: SigningKey, subjects: int,
           tag: str) -> tuple[str, list[str]]:
    """A registered trial at the hospital with ``subjects`` consented, enrolled subjects."""
    trial = chain.ok(coordinator, "trials.register", {
        "dataset": _dataset(), "protocol": {"document_hash": _h(f"protocol {tag}"), "consent_form_hash": _h("form")}})[
        "trial"]
    chain.ok(coordinator, "trials.add_site", {
        "trial": trial, "org": "hospital",
        "ethics": {"status": "approved", "committee": "REC", "contact": "rec", "approval_date": "2023-10-01"},
        "investigators": [{"key": investigator.public_hex, "role": "principal_investigator"}]})
    keys = [derive_study_key(_key(f"patient/{i}").seed, trial) for i in range(subjects)]
    chain.block([chain.tx(k, "trials.consent", {"trial": trial, "protocol_version": 1, "consent_form_hash": _h("form")})
                 for k in keys])
    names = [compute_study_pseudonym(k.public_hex) for k in keys]
    receipts, _ = chain.block([chain.tx(investigator, "trials.enrol", {"trial": trial, "site": "hospital",
                                                                       "subject": s}) for s in names])
    if any(r.code for r in receipts):
        raise RuntimeError("enrolment failed in the benchmark set-up")
    return trial, names


def _visit_txs(chain: _InProcessChain, steward: SigningKey, trial: str, subjects: list[str], n: int, tag: str,
               per_tx: int = 1, commit: bool = True) -> list[bytes]:
    """``n`` transactions of ``per_tx`` visits each; without ``commit`` they are signed with nonce 1 (they are
    only applied, never committed, so the steward's nonces stay in order)."""
    out = []
    for i in range(n):
        payload = {"trial": trial, "site": "hospital", "visits": [{
            "subject": subjects[(i * per_tx + j) % len(subjects)], "visit": f"{tag}{i}-{j}",
            "resources": [{"type": "Observation", "commitment": _h(f"{tag}{i}-{j}")}]} for j in range(per_tx)]}
        out.append(chain.tx(steward, "trials.record_visits", payload) if commit
                   else sign_tx(steward, CHAIN_ID, "trials.record_visits", 1, 1, payload))
    return out


def _per_tx_us(chain: _InProcessChain, raws: list[bytes], block_size: int = 500) -> float:
    seconds = 0.0
    for i in range(0, len(raws), block_size):
        receipts, s = chain.block(raws[i:i + block_size])
        if any(r.code for r in receipts):
            raise RuntimeError(f"benchmark transaction failed: {next(r for r in receipts if r.code).message}")
        seconds += s
    return seconds / len(raws) * 1e6


def _contract_only_us(chain: _InProcessChain, raws: list[bytes]) -> float:
    """authorize + apply of already checked transactions, each on a fresh overlay (nothing committed)."""
    checked = [check_stateless(chain.chain, raw) for raw in raws]
    env = chain.env()
    start = time.thread_time()
    for c in checked:
        ctx = TxContext(env=env, tx_hash=c.tx.hash_hex, index=0, signer=resolve_signer(chain.state, c.tx.signer_hex),
                        params=chain.chain.params)
        staged = Overlay(chain.state)
        c.handler.authorize(staged, ctx, c.payload)
        c.handler.apply(staged, ctx, c.payload)
    return (time.thread_time() - start) / len(checked) * 1e6


def _lock_us(chain: _InProcessChain, coordinator: SigningKey, trial: str, repeat: int) -> tuple[float, Any]:
    """Execute ``trials.lock`` ``repeat`` times on the committed state, never committing it: best µs per lock."""
    raw = sign_tx(coordinator, CHAIN_ID, "trials.lock", 1, chain.nonces[coordinator.public_hex] + 1, {"trial": trial})
    checked = check_stateless(chain.chain, raw)
    best, result = float("inf"), None
    for _ in range(repeat):
        run = BlockExecution(chain.chain, chain.state, chain.env(), chain.app_hash)
        start = time.thread_time()
        receipt = run.add(checked)
        best = min(best, time.thread_time() - start)
        if receipt.code != 0:
            raise RuntimeError(f"lock failed: {receipt.message}")
        result = receipt.result
    return best * 1e6, result


def bench_trials_kernel(anchors: int = 1_000_000, visits: int = 2_000, subjects: int = 200,
                        progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Anchoring cost per visit (beside the records.anchor baseline) and lock cost at a small tree vs ``anchors``."""
    chain = _InProcessChain()
    coordinator, investigator, steward = _members(chain)
    trial, names = _trial(chain, coordinator, investigator, subjects, "main")
    progress(f"trial {trial} with {subjects} enrolled subjects")
    _per_tx_us(chain, _visit_txs(chain, steward, trial, names, 200, "warm"))  # warm-up, not timed
    visit_us = _per_tx_us(chain, _visit_txs(chain, steward, trial, names, visits, "v"))
    contract_us = min(_contract_only_us(chain, _visit_txs(chain, steward, trial, names, 200, f"c{r}-", commit=False))
                      for r in range(5))
    batch_us = _per_tx_us(chain, _visit_txs(chain, steward, trial, names, max(1, visits // 64), "b", 64), 50) / 64
    patients = [_key(f"record-patient/{i}") for i in range(subjects)]
    chain.block([chain.tx(k, "identity.register_patient", {}) for k in patients])
    records_us = _per_tx_us(chain, [chain.tx(steward, "records.anchor", {"custodian": "hospital", "anchors": [{
        "record": f"r-{i:032x}", "version": 1, "pseudonym": compute_pseudonym(patients[i % subjects].public_hex),
        "type": "Observation", "commitment": _h(f"r{i}")}]}) for i in range(visits)])
    progress(f"visit anchor: {visit_us:.1f} µs/tx ({contract_us:.1f} µs in the contract), {batch_us:.1f} µs/visit "
             f"in 64-visit transactions; records.anchor baseline {records_us:.1f} µs/tx")

    # a second trial with exactly 10 anchors, for the lock at a small tree
    small, small_names = _trial(chain, coordinator, investigator, 2, "small")
    _per_tx_us(chain, _visit_txs(chain, steward, small, small_names, 10, "s"))
    small_size = trials_contract.get_tree(chain.state, small).size
    small_bytes = len(chain.state.get_raw(tree_key(small)) or b"")
    lock_small_us, lock_small = _lock_us(chain, coordinator, small, 300)
    progress(f"lock at {small_size:,} anchors: {lock_small_us:.1f} µs")

    # the same trial's tree, now holding ``anchors`` leaves: built with the contract's own append and
    # written into the state directly (building it by consensus would take the whole run)
    start = time.thread_time()
    frontier: tuple[bytes, ...] = ()
    for i in range(anchors):
        frontier = frontier_append(frontier, i, leaf_hash(i.to_bytes(8, "big")))
    build_s = time.thread_time() - start
    chain.state.apply({tree_key(trial): codec.encode(TreeRecord(anchors, frontier).to_json())})
    big_bytes = len(chain.state.get_raw(tree_key(trial)) or b"")
    progress(f"built a {anchors:,}-leaf frontier in {build_s:.2f} s ({build_s / anchors * 1e6:.2f} µs per append)")
    lock_big_us, lock_big = _lock_us(chain, coordinator, trial, 300)
    if lock_big["root"] != frontier_root(frontier).hex() or lock_big["size"] != anchors:
        raise RuntimeError("the lock root differs from the frontier's")
    progress(f"lock at {anchors:,} anchors: {lock_big_us:.1f} µs")
    visit_big_us = _per_tx_us(chain, _visit_txs(chain, steward, trial, names, visits, "w"))
    progress(f"visit anchor with {anchors:,} anchors already in the tree: {visit_big_us:.1f} µs/tx")
    return {
        "visits": visits, "subjects": subjects,
        "visit_anchor_tx_us": round(visit_us, 1), "visit_anchor_contract_us": round(contract_us, 1),
        "visit_anchor_us_per_visit_batch64": round(batch_us, 1),
        "visit_anchor_tx_us_in_large_tree": round(visit_big_us, 1),
        "records_anchor_tx_us": round(records_us, 1),
        "visit_vs_records_anchor": round(visit_us / records_us, 2),
        "lock_us": {str(small_size): round(lock_small_us, 1), str(anchors): round(lock_big_us, 1)},
        "lock_ratio_large_vs_small": round(lock_big_us / lock_small_us, 2),
        "tree_record_bytes": {str(small_size): small_bytes, str(anchors): big_bytes},
        "frontier_entries": {str(small_size): small_size.bit_count(), str(anchors): anchors.bit_count()},
        "frontier_build_s": round(build_s, 2), "frontier_append_us": round(build_s / anchors * 1e6, 2),
        "lock_small_root": lock_small["root"],
        "note": "in process, one thread, real executor over MemoryState; CPU time of the executing thread; "
                "contract share = best of 5 rounds of 200; lock = best of 300 executions",
    }


__all__ = ["bench_trials_kernel"]
