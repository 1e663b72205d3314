"""Vectors of the research contract: every one of its nine transaction types, accepted and refused.

The consortium is a research organisation (the sponsor, with a researcher), a hospital (the custodian,
with a data steward, and a researcher of its own, who is not the sponsor's) and a regulator. Patients
consent under study pseudonyms: each signs ``research.consent`` and ``research.revoke_consent`` with
the key she derives from her own seed for one study or one category
(``careledger.contracts.research.study_keys``), an unregistered key that never signs anything else.
The ledger never sees released data, so a release carries only what the contract checks: made-up
dataset and configuration hashes, counts, the achieved k and l, and the consent snapshot (study
pseudonym, consent) whose Merkle root it declares.

A transaction refused by the contract's ``authorize`` step (who may sign, section 4.1 check 21) is
refused by a node at admission already, so those refusals are kept together in
``research_unauthorised_signers``; every other vector is reproduced byte for byte by the engines.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

from careledger.contracts.research.layout import snapshot_leaf
from careledger.contracts.research.study_keys import compute_study_pseudonym, derive_study_key, scope_info
from careledger.core.crypto import SigningKey
from careledger.core.merkle import merkle_root
from vectors.builder import GENESIS_TIME_MS, Builder, Org, admin, enrol, key, nonce

SPONSOR_ORG, HOSPITAL, REGULATOR = "research-r", "hospital-a", "regulator-d"
RESEARCH_ORGS: tuple[Org, ...] = ((SPONSOR_ORG, "research", ()), (HOSPITAL, "hospital", ()),
                                  (REGULATOR, "regulator", ()))
RESEARCHER, STEWARD = key("research/researcher"), key("research/steward")
HOSPITAL_RESEARCHER = key("research/hospital-researcher")
"""A researcher, but of the hospital: neither a sponsor of the study nor a recipient of its releases."""
PATIENTS = [key(f"patient/{n}") for n in range(1, 7)]
DAY_MS = 86_400_000
TODAY = GENESIS_TIME_MS // DAY_MS
CATEGORY = "cardiometabolic"
STUDY: dict[str, Any] = {
    "anonymity": {"k": 5, "l": 2, "sensitive_type": "Condition"}, "category": CATEGORY,
    "ethics_ref": "IRB-2025-117", "period": {"start_ms": GENESIS_TIME_MS},
    "request": {"resource_types": ["Condition", "Observation", "Patient"]}, "sponsor": SPONSOR_ORG,
    "title": "Cardiometabolic outcomes",
}
"""The study every vector works with: open from genesis with no end (so a real network, whose blocks
carry today's time, finds it open too), k = 5 and distinct l = 2 on the Condition codes."""


def h(label: str) -> str:
    """A made-up SHA-256 (a dataset root, configuration or answer hash) from a label."""
    return hashlib.sha256(b"careledger-vectors/research/" + label.encode()).hexdigest()


def tx_id(prefix: str, raw: bytes) -> str:
    """The id a transaction derives for the first object it creates (docs/protocol.md section 13)."""
    return f"{prefix}-{hashlib.sha256(raw).hexdigest()[:24]}"


def spec(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(STUDY)
    doc.update(changes)
    return doc


def research_builder() -> Builder:
    return Builder(orgs=RESEARCH_ORGS)


def members(b: Builder) -> None:
    """A pre block: the sponsor's researcher, the hospital's data steward and the hospital's researcher."""
    b.pre(enrol(b, SPONSOR_ORG, RESEARCHER, ["researcher"]), enrol(b, HOSPITAL, STEWARD, ["data_steward"]),
          enrol(b, HOSPITAL, HOSPITAL_RESEARCHER, ["researcher"]))


def register(b: Builder, signer: SigningKey = RESEARCHER, **changes: Any) -> bytes:
    return b.tx(signer, "research.register_study", spec(**changes))


def registered(b: Builder) -> str:
    """Pre blocks: the members, then the study; its id."""
    members(b)
    [receipt] = b.pre(register(b))
    return str(receipt["result"]["study"])


def study_key(patient: int, scope: str, target: str) -> SigningKey:
    """Patient ``patient``'s key for one study or one category: unregistered, derived from her seed."""
    return derive_study_key(PATIENTS[patient].seed, scope_info(scope, target))


def subject(patient: int, scope: str, target: str) -> str:
    return compute_study_pseudonym(study_key(patient, scope, target).public_hex)


def consent(b: Builder, patient: int, target: str, scope: str = "study", **fields: Any) -> bytes:
    return b.tx(study_key(patient, scope, target), "research.consent", {"scope": scope, "target": target, **fields})


def revoke(b: Builder, patient: int, target: str, consent_id: str, scope: str = "study") -> bytes:
    return b.tx(study_key(patient, scope, target), "research.revoke_consent", {"consent": consent_id})


Entry = tuple[str, str]  # (study pseudonym, consent id)


def consented(b: Builder, study: str, patients: int) -> list[Entry]:
    """A pre block: ``patients`` patients consent to ``study``; their snapshot entries, sorted by subject."""
    raws = [consent(b, n, study) for n in range(patients)]
    b.pre(*raws)
    return sorted((subject(n, "study", study), tx_id("rcn", raw)) for n, raw in enumerate(raws))


def snapshot_root(entries: list[Entry]) -> str:
    """The Merkle root of a consent snapshot: its (subject, consent) leaves in subject order."""
    return merkle_root([snapshot_leaf(s, c) for s, c in sorted(entries)]).hex()


def release(b: Builder, study_id: str, entries: list[Entry], snapshot: list[Entry] | None = None,
            signer: SigningKey = STEWARD, **fields: Any) -> bytes:
    """A release of the whole ``snapshot`` (default: ``entries``), anchoring ``entries`` with it."""
    snapshot = entries if snapshot is None else snapshot
    payload: dict[str, Any] = {
        "as_of_day": TODAY, "config_hash": h("config/safe-harbor-v1"), "custodian": HOSPITAL,
        "dataset_root": h(f"dataset/{len(snapshot)}"), "entries": [{"consent": c, "subject": s} for s, c in entries],
        "k_achieved": 5, "l_achieved": 2, "quasi_identifiers": ["birth_year", "sex", "zip3"],
        "recipient": RESEARCHER.public_hex, "records": 8 * len(snapshot),
        "resource_types": ["Condition", "Observation", "Patient"], "rule_version": "safe-harbor/v1",
        "snapshot_root": snapshot_root(snapshot), "study": study_id, "study_version": 1, "subjects": len(snapshot),
        "suppressed": 0, "zip3_list": "census-2010", "zip3_vintage": 2010}
    payload.update(fields)
    return b.tx(signer, "research.release", payload)


def release_subjects(b: Builder, release_id: str, entries: list[Entry], signer: SigningKey = STEWARD) -> bytes:
    return b.tx(signer, "research.release_subjects", {"entries": [{"consent": c, "subject": s} for s, c in entries],
                                                      "release": release_id})


def query(b: Builder, study: str, signer: SigningKey = RESEARCHER, **spec_fields: Any) -> bytes:
    return b.tx(signer, "research.query", {"query": {"group_by": ["sex"], "measure": "count", **spec_fields},
                                           "study": study})


def answer(b: Builder, query_id: str, signer: SigningKey = STEWARD, **fields: Any) -> bytes:
    return b.tx(signer, "research.answer", {"answer_hash": h(f"answer/{query_id}"), "cells": 2, "contributors": 30,
                                            "custodian": HOSPITAL, "query": query_id, "suppressed_cells": 1,
                                            **fields})


def seen(subject_: str, height: int, release_id: str) -> str:
    return f"research/seen/{subject_}/{height:012d}-{release_id}"


# -- the study registry -------------------------------------------------------------------------------------

def research_register_study() -> dict[str, Any]:
    b = research_builder()
    members(b)
    full = register(b, admin(SPONSOR_ORG), anonymity={}, purpose="CLINTRCH",
                    period={"end_ms": GENESIS_TIME_MS + 400 * DAY_MS, "start_ms": GENESIS_TIME_MS},
                    request={"cohort": {"birth_year_max": 1990, "birth_year_min": 1940, "conditions_any": [
                        "http://snomed.info/sct|44054006", "http://snomed.info/sct|38341003"],
                        "sex": ["male", "female"]}, "elements": ["Observation.value", "Condition.code"],
                        "resource_types": ["Patient", "Observation", "Condition"]})
    raws = [register(b), full,
            register(b, request={"resource_types": ["Condition", "Observation"]}),
            register(b, period={"end_ms": GENESIS_TIME_MS, "start_ms": GENESIS_TIME_MS}),
            register(b, anonymity={"k": 5, "l": 2}),
            register(b, request={"resource_types": ["Claim", "Patient"]}),
            register(b, anonymity={"k": 4})]
    first, second = tx_id("study", raws[0]), tx_id("study", raws[1])
    return b.vector("research_register_study",
                    "The sponsor's researcher registers a data-sharing study (version 1, k = 5, l = 2 on "
                    "Condition); the sponsor's admin registers one with a cohort, elements and the default "
                    "anonymity (the lists stored sorted, the defaults written). A study not requesting Patient, "
                    "a period ending when it starts, l without a sensitive type and a type that may not be "
                    "released fail (6005); k below 5 is invalid (105).",
                    raws, [f"research/study/{first}", f"research/study-version/{first}/000001",
                           f"research/study/{second}"],
                    [(True, 0), (True, 0), (True, 6005), (True, 6005), (True, 6005), (True, 6005), (False, 105)])


def research_new_version_and_close() -> dict[str, Any]:
    b = research_builder()
    study = registered(b)

    def new_version(version: int, **changes: Any) -> bytes:
        doc = {**spec(**changes), "reconsent": True, "study": study, "version": version}
        del doc["sponsor"]
        return b.tx(RESEARCHER, "research.new_version", doc)

    def close() -> bytes:
        return b.tx(RESEARCHER, "research.close_study", {"study": study})

    return b.vector("research_new_version_and_close",
                    "Version 2 asks for renewed consent (consent_version 2; version 1 is kept); version 2 again "
                    "is 6004 and a version 3 without Patient is 6005; the sponsor closes the study; closing it "
                    "again, or a new version of the closed study, is 6002.",
                    [new_version(2, title="Cardiometabolic outcomes, extended"), new_version(2),
                     new_version(3, request={"resource_types": ["Condition"]}), close(), close(), new_version(3)],
                    [f"research/study/{study}", f"research/study-version/{study}/000001",
                     f"research/study-version/{study}/000002", f"research/study-version/{study}/000003"],
                    [(True, 0), (True, 6004), (True, 6005), (True, 0), (True, 6002), (True, 6002)])


# -- research consent ---------------------------------------------------------------------------------------

def research_consent() -> dict[str, Any]:
    b = research_builder()
    study = registered(b)
    [closed_receipt] = b.pre(register(b, title="Closed study"))
    closed = str(closed_receipt["result"]["study"])
    b.pre(b.tx(RESEARCHER, "research.close_study", {"study": closed}))
    raws = [consent(b, 0, study), consent(b, 0, study),
            consent(b, 1, study, resource_types=["Patient", "Condition"]),
            consent(b, 2, CATEGORY, scope="category"),
            consent(b, 3, "study-" + "0" * 24), consent(b, 3, closed),
            consent(b, 4, study, resource_types=["Procedure"]), consent(b, 5, "Cardio_Metabolic", scope="category")]
    return b.vector("research_consent",
                    "Patients opt in with keys derived for this study (unregistered; the subject is the study "
                    "pseudonym): to the study, again (6015), to some of its types only (stored sorted); another "
                    "gives broad consent to its category. A study that does not exist (6001) or is closed "
                    "(6002), a type the study does not request and a target that is no category code (6005) "
                    "fail.",
                    raws, [f"research/consent/{subject(0, 'study', study)}/{tx_id('rcn', raws[0])}",
                           f"research/consent-id/{tx_id('rcn', raws[0])}",
                           f"research/consent/{subject(2, 'category', CATEGORY)}/{tx_id('rcn', raws[3])}",
                           f"identity/key/{study_key(0, 'study', study).public_hex}"],
                    [(True, 0), (True, 6015), (True, 0), (True, 0), (True, 6001), (True, 6002), (True, 6005),
                     (True, 6005)])


def research_revoke_consent() -> dict[str, Any]:
    b = research_builder()
    study = registered(b)
    [(_, cid)] = consented(b, study, 1)
    return b.vector("research_revoke_consent",
                    "The study key revokes its consent (it stops covering the study at once); revoking it again "
                    "in the same block is 6011.",
                    [revoke(b, 0, study, cid), revoke(b, 0, study, cid)],
                    [f"research/consent/{subject(0, 'study', study)}/{cid}"], [(True, 0), (True, 6011)])


# -- anchored releases --------------------------------------------------------------------------------------

def research_release() -> dict[str, Any]:
    b = research_builder()
    study = registered(b)
    entries = consented(b, study, 5)

    def refused(**fields: Any) -> bytes:  # the rules are checked before any snapshot entry
        return release(b, study, [], entries, **fields)

    raws = [refused(study_version=2), refused(recipient=HOSPITAL_RESEARCHER.public_hex),
            refused(resource_types=["Patient", "Procedure"]), refused(quasi_identifiers=["birth_year", "sex"]),
            refused(k_achieved=4), refused(l_achieved=None), refused(suppressed=1),
            refused(study="study-" + "0" * 24), release(b, study, entries)]
    rid = tx_id("rel", raws[-1])
    height = b.height + 1
    return b.vector("research_release",
                    "Releases refused by their rules: another study version (6004), a recipient who is not a "
                    "researcher of the sponsor (6024), a type the study did not request (6023), other "
                    "quasi-identifiers (6030), k = 4 (6021), no l (6022), more suppressed patients than the "
                    "study's 5% (6030), an unknown study (6001). Then the data steward anchors a release of five "
                    "consenting patients, complete in one transaction: the snapshot entries, the study's list "
                    "of releases and each patient's log line.",
                    raws, [f"research/release/{rid}", f"research/study-release/{study}/{rid}",
                           f"research/release-subject/{rid}/{entries[0][0]}", seen(entries[0][0], height, rid)],
                    [(True, 6004), (True, 6024), (True, 6023), (True, 6030), (True, 6021), (True, 6022),
                     (True, 6030), (True, 6001), (True, 0)])


def research_release_snapshot() -> dict[str, Any]:
    b = research_builder()
    study = registered(b)
    entries = consented(b, study, 3)
    broad = consent(b, 3, CATEGORY, scope="category")
    revoked = consent(b, 4, study)
    b.pre(broad, revoked)
    b.pre(revoke(b, 4, study, tx_id("rcn", revoked)))
    broad_entry = (subject(3, "category", CATEGORY), tx_id("rcn", broad))
    revoked_entry = (subject(4, "study", study), tx_id("rcn", revoked))
    (s0, c0), (s1, c1), _ = entries
    with_broad = sorted([*entries, broad_entry])
    raws = [release(b, study, sorted([*entries, revoked_entry])),
            release(b, study, [(s0, c1), (s1, c0)]),
            release(b, study, [(s0, c0), (s0, c0)], [(s0, c0), (s1, c1)]),
            release(b, study, with_broad, entries),
            release(b, study, entries, snapshot_root=snapshot_root(with_broad)),
            release(b, study, with_broad)]
    rid = tx_id("rel", raws[-1])
    return b.vector("research_release_snapshot",
                    "Snapshot entries are checked one by one: a revoked consent (6014), consents swapped between "
                    "two subjects (6010), a subject twice (6027), more entries than the release declared "
                    "(6028), every entry but not the declared root (6026). A release of four patients, one of "
                    "them covered by her broad consent to the study's category, is complete.",
                    raws, [f"research/release/{rid}", f"research/release-subject/{rid}/{broad_entry[0]}",
                           f"research/release-subject/{rid}/{revoked_entry[0]}"],
                    [(True, 6014), (True, 6010), (True, 6027), (True, 6028), (True, 6026), (True, 0)])


def research_release_subjects() -> dict[str, Any]:
    b = research_builder()
    study = registered(b)
    patients = consented(b, study, 5)
    entries, late = patients[:4], patients[4:]
    first, second = release(b, study, entries[:2], entries), release(b, study, [], late)
    b.pre(first, second)
    large, small = tx_id("rel", first), tx_id("rel", second)
    leaving = next(n for n in range(5) if subject(n, "study", study) == late[0][0])
    b.pre(revoke(b, leaving, study, late[0][1]))
    return b.vector("research_release_subjects",
                    "The rest of an anchoring release's snapshot: an entry already anchored fails (6027); so "
                    "does, for another release, a consent revoked since that release was anchored (6014: a "
                    "revoked consent is never relied on again); the last two entries complete the first "
                    "release (its root checked); more entries are 6025; once the sponsor has closed the study, "
                    "the other release gets no more entries (6002).",
                    [release_subjects(b, large, entries[1:3]), release_subjects(b, small, late),
                     release_subjects(b, large, entries[2:]), release_subjects(b, large, entries[3:]),
                     b.tx(RESEARCHER, "research.close_study", {"study": study}),
                     release_subjects(b, small, late)],
                    [f"research/release/{large}", f"research/release/{small}",
                     f"research/release-subject/{large}/{entries[3][0]}",
                     f"research/release-subject/{small}/{late[0][0]}"],
                    [(True, 6027), (True, 6014), (True, 0), (True, 6025), (True, 0), (True, 6002)])


def research_release_period() -> dict[str, Any]:
    b = research_builder()
    members(b)
    # block times are genesis + 1 s per height: registered at height 2, consents at 3, the first part of a
    # release at 4; the study's period ends at height 5, where this vector's block is
    ending_ms = GENESIS_TIME_MS + 5 * 1000
    ending_raw = register(b, title="Ending study", period={"end_ms": ending_ms, "start_ms": GENESIS_TIME_MS})
    later_raw = register(b, title="Later study",
                         period={"end_ms": GENESIS_TIME_MS + 60 * DAY_MS, "start_ms": GENESIS_TIME_MS + 30 * DAY_MS})
    ending, later = (str(r["result"]["study"]) for r in b.pre(ending_raw, later_raw))
    raws = [consent(b, n, ending) for n in range(5)]
    broad_raws = [consent(b, n, CATEGORY, scope="category") for n in range(5)]
    b.pre(*raws, *broad_raws)
    entries = sorted((subject(n, "study", ending), tx_id("rcn", raw)) for n, raw in enumerate(raws))
    broad = sorted((subject(n, "category", CATEGORY), tx_id("rcn", raw)) for n, raw in enumerate(broad_raws))
    first = release(b, ending, entries[:3], entries)
    b.pre(first)
    rid = tx_id("rel", first)
    return b.vector("research_release_period",
                    "A study is open for releases only within its period, as for consents and queries: at the "
                    "block where the period ends (the study still active), the rest of a release anchored "
                    "the block before fails (6002), and so does a new release of the same consents; a release "
                    "to a study whose period has not started, of broad consents that cover it, fails too "
                    "(6002). Nothing is written: the first release stays anchoring with three entries.",
                    [release_subjects(b, rid, entries[3:]), release(b, ending, entries), release(b, later, broad)],
                    [f"research/release/{rid}", f"research/release-subject/{rid}/{entries[3][0]}",
                     f"research/study/{ending}"],
                    [(True, 6002), (True, 6002), (True, 6002)])


# -- aggregate queries --------------------------------------------------------------------------------------

def research_query() -> dict[str, Any]:
    b = research_builder()
    study = registered(b)
    [closed_receipt] = b.pre(register(b, title="Closed study"))
    closed = str(closed_receipt["result"]["study"])
    b.pre(b.tx(RESEARCHER, "research.close_study", {"study": closed}))
    raws = [query(b, study),
            query(b, study, cohort={"sex": ["male", "female"]}, condition_codes=["http://snomed.info/sct|44054006"],
                  group_by=["condition", "birth_decade"], measure="sum", sum_of="resources:Observation"),
            query(b, study, measure="sum"), query(b, study, group_by=["condition"]),
            query(b, study, group_by=["sex", "sex"]), query(b, closed)]
    return b.vector("research_query",
                    "The sponsor's researcher anchors a count by sex, and a sum over a cohort grouped by "
                    "condition and birth decade (its canonical spec and hash stored); a sum of nothing, grouping "
                    "by condition without codes and a group twice fail (6042); a closed study is 6002.",
                    raws, [f"research/query/{tx_id('rq', raws[0])}", f"research/query/{tx_id('rq', raws[1])}"],
                    [(True, 0), (True, 0), (True, 6042), (True, 6042), (True, 6042), (True, 6002)])


def research_answer() -> dict[str, Any]:
    b = research_builder()
    study = registered(b)
    asked = query(b, study)
    b.pre(asked)
    qid = tx_id("rq", asked)
    return b.vector("research_answer",
                    "The hospital's data steward anchors the hash and shape of its answer; more suppressed "
                    "cells than cells (6042), a second answer (6041) and an answer to an unknown query (6040) "
                    "fail.",
                    [answer(b, qid, suppressed_cells=3), answer(b, qid), answer(b, qid),
                     answer(b, "rq-" + "0" * 24)],
                    [f"research/answer/{qid}/{HOSPITAL}"], [(True, 6042), (True, 0), (True, 6041), (True, 6040)])


# -- who may sign -------------------------------------------------------------------------------------------

def research_unauthorised_signers() -> dict[str, Any]:
    b = research_builder()
    study = registered(b)
    [(first, cid)] = consented(b, study, 1)
    patient = PATIENTS[5]
    b.pre(b.tx(patient, "identity.register_patient", {}))
    version = {**spec(), "study": study, "version": 2}
    del version["sponsor"]
    # one refused transaction per signer, and last of its signer's: a node refuses it at admission, where
    # it consumes no nonce, so a later transaction of the same signer would be out of order there
    raws = [register(b, HOSPITAL_RESEARCHER), b.tx(admin(HOSPITAL), "research.new_version", version),
            b.tx(admin(SPONSOR_ORG), "research.close_study", {"study": "study-" + "0" * 24}),
            b.tx(patient, "research.consent", {"scope": "study", "target": study}),
            revoke(b, 1, study, cid), revoke(b, 0, study, "rcn-" + "0" * 24),
            release(b, study, [], [(first, cid)], signer=admin(REGULATOR)),
            release_subjects(b, "rel-" + "0" * 24, [(first, cid)]),
            query(b, study), query(b, "study-" + "0" * 24)]
    return b.vector("research_unauthorised_signers",
                    "Who may sign, each refusal made by the contract's authorisation (so a node refuses the "
                    "transaction at admission, with the same code): a researcher or an admin of another "
                    "organisation may not register or version the sponsor's study (6003), nor anchor the "
                    "hospital's releases (6029); a registered key may not consent (6013); a study key may not "
                    "revoke another's consent (6012); unknown studies (6001), consents (6010) and releases "
                    "(6020). The sponsor's researcher anchors a query.",
                    raws, [f"research/study/{study}", f"research/query/{tx_id('rq', raws[8])}", nonce(patient),
                           nonce(HOSPITAL_RESEARCHER)],
                    [(True, 6003), (True, 6003), (True, 6001), (True, 6013), (True, 6012), (True, 6010),
                     (True, 6029), (True, 6020), (True, 0), (True, 6001)])


VECTORS: list[Callable[[], dict[str, Any]]] = [
    research_register_study, research_new_version_and_close, research_consent, research_revoke_consent,
    research_release, research_release_snapshot, research_release_subjects, research_release_period,
    research_query, research_answer,
    research_unauthorised_signers,
]
