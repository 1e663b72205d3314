"""The custodian's research desk: linkage statements, consenting cohorts, releases and answers from its vault.

A :class:`ResearchDesk` works beside one organisation's :class:`~careledger.vault.store.Vault`, over a
committed ledger view, and never writes to the ledger itself: it returns the payloads the gateway
signs with the vault's gateway key and submits (``research.release``, ``research.release_subjects``,
``research.answer``), and the files it seals to the researcher (:mod:`.envelope`).

* Linkage: a patient hands this custodian a linkage statement addressed to it
  (:mod:`careledger.contracts.research.study_keys`); the desk verifies it, requires her patient
  pseudonym to be registered and active, and keeps it in ``research.sqlite`` beside the vault.
  Without one, her study pseudonym is a stranger here.
* Cohort: the patients of a study are the linked study pseudonyms whose research consent covers the
  study at the view's height (:func:`careledger.contracts.research.consent_covers`).
* Records: the latest anchored, unerased version of each of her records held here, opened from the
  vault and checked against its ledger commitment.
* The cryptoHash key of a study at this custodian is HMAC-SHA256(organisation key, study id): the
  same subject codes in every release of one study here, unlinkable elsewhere, never disclosed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from careledger.contracts import identity
from careledger.contracts.records import get_anchor, patient_index
from careledger.contracts.research import (
    MAX_SUBJECTS_PER_TX,
    Linkage,
    ResearchConsentRecord,
    StudyRecord,
    consent_covers,
    consents_of,
    get_query,
    get_study,
    verify_linkage_statement,
)
from careledger.core.errors import Code, LedgerError
from careledger.core.state import StateReader
from careledger.research.aggregate import PatientFacts, answer_payload, answer_query, extract_facts
from careledger.research.config import DeidConfig, vendored_config
from careledger.research.release import BuiltRelease, PatientData, ReleaseSpec, build_release
from careledger.vault.canonical import compute_commitment, parse_exact
from careledger.vault.store import Vault, VaultIntegrityError

HASH_KEY_TAG = b"careledger/research/crypto-hash/v1\x00"
_SCHEMA = """CREATE TABLE IF NOT EXISTS linkage (subject TEXT PRIMARY KEY, patient TEXT NOT NULL, scope TEXT NOT NULL,
    target TEXT NOT NULL, statement TEXT NOT NULL) WITHOUT ROWID"""


class LinkageStore:
    """Verified linkage statements, by study pseudonym (SQLite; ``:memory:`` for tests)."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False)
        self._conn.execute(_SCHEMA)
        self._conn.commit()

    def put(self, link: Linkage, statement: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO linkage VALUES (?, ?, ?, ?, ?)",
                               (link.subject, link.patient, link.scope, link.target,
                                json.dumps(statement, sort_keys=True)))
            self._conn.commit()

    def for_scope(self, scope: str, target: str) -> list[Linkage]:
        with self._lock:
            rows = self._conn.execute("SELECT subject, patient, scope, target, statement FROM linkage WHERE scope = ? "
                                      "AND target = ? ORDER BY subject", (scope, target)).fetchall()
        out = []
        for s, p, sc, t, doc in rows:
            statement = json.loads(doc)["statement"]
            out.append(Linkage(patient=p, subject=s, scope=sc, target=t, audience=statement["audience"],
                               issued_ms=statement["issued_ms"]))
        return out

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class ResearchDesk:
    """One custodian's research work over its vault (see the module docstring)."""

    def __init__(self, vault: Vault, chain_id: str, config: DeidConfig | None = None,
                 linkages: LinkageStore | None = None) -> None:
        self.vault = vault
        self.org = vault.org
        self.chain_id = chain_id
        self.config = config or vendored_config()
        self.linkages = linkages or LinkageStore(vault.directory / "research.sqlite")

    def hash_key(self, study: str) -> bytes:
        return hmac.new(self.vault.org_key.key, HASH_KEY_TAG + study.encode(), hashlib.sha256).digest()

    # -- linkage --------------------------------------------------------------------------------------------
    def accept_linkage(self, view: StateReader, statement: Any) -> Linkage:
        """Verify and keep a patient's linkage statement. Raises LINKAGE_INVALID (bad statement, or one
        addressed to another organisation) or LINKAGE_UNKNOWN (her patient pseudonym is not a registered,
        active patient)."""
        link = verify_linkage_statement(statement, self.chain_id, self.org)
        patient = identity.get_patient(view, link.patient)
        if patient is None or not patient.is_active:
            raise LedgerError("the linkage names no active registered patient", Code.LINKAGE_UNKNOWN)
        self.linkages.put(link, statement)
        return link

    # -- cohort and records ---------------------------------------------------------------------------------
    def consenting(self, view: StateReader, study: StudyRecord) -> list[tuple[Linkage, ResearchConsentRecord]]:
        """Linked patients whose research consent covers ``study`` in ``view``, by study pseudonym."""
        links = self.linkages.for_scope("study", study.id)
        if study.kind == "data":
            links += self.linkages.for_scope("category", study.category)
        out = []
        for link in sorted(links, key=lambda x: x.subject):
            consent = next((c for c in consents_of(view, link.subject) if consent_covers(c, study)), None)
            if consent is not None:
                out.append((link, consent))
        return out

    def records_of(self, view: StateReader, patient: str) -> list[dict[str, Any]]:
        """The latest version of each active record of ``patient`` held here, checked against its anchor.
        Raises VAULT_INTEGRITY when a version does not match its commitment."""
        out = []
        for record, entry in patient_index(view, patient):
            if entry.custodian != self.org or entry.status != "active":
                continue
            anchor = get_anchor(view, record, entry.version)
            salt, canonical = self.vault.open(record, entry.version)
            if anchor is None or compute_commitment(salt, canonical) != anchor.commitment:
                raise VaultIntegrityError(f"record {record} does not match its ledger anchor")
            resource = parse_exact(canonical)
            if type(resource) is dict:
                out.append(resource)
        return out

    # -- releases -------------------------------------------------------------------------------------------
    def prepare_release(self, view: StateReader, study_id: str, recipient: str, as_of_day: int) -> BuiltRelease:
        """Build the release of ``study_id`` for ``recipient`` from the consenting patients' records.
        Raises STUDY_UNKNOWN, STUDY_CLOSED, and every refusal of :func:`.release.build_release`."""
        study = get_study(view, study_id)
        if study is None:
            raise LedgerError(f"no study {study_id}", Code.STUDY_UNKNOWN)
        if study.status != "active":
            raise LedgerError(f"study {study_id} is closed", Code.STUDY_CLOSED)
        patients = [PatientData(link.subject, consent.id, tuple(self.records_of(view, link.patient)),
                                consent.resource_types)
                    for link, consent in self.consenting(view, study)]
        spec = ReleaseSpec(study.id, study.version, self.org, recipient, study.request, study.anonymity, as_of_day)
        return build_release(patients, spec, self.config, self.hash_key(study.id))

    @staticmethod
    def release_payload(built: BuiltRelease) -> dict[str, Any]:
        """The ``research.release`` payload: the report and the first snapshot entries."""
        return built.report.release_payload(built.snapshot[:MAX_SUBJECTS_PER_TX])

    @staticmethod
    def subject_payloads(built: BuiltRelease, release_id: str) -> list[dict[str, Any]]:
        """The ``research.release_subjects`` payloads carrying the rest of the snapshot."""
        rest = built.snapshot[MAX_SUBJECTS_PER_TX:]
        return [{"entries": [{"consent": c, "subject": s} for s, c in rest[i:i + MAX_SUBJECTS_PER_TX]],
                 "release": release_id} for i in range(0, len(rest), MAX_SUBJECTS_PER_TX)]

    # -- aggregate queries -----------------------------------------------------------------------------------
    def facts(self, view: StateReader, study: StudyRecord, as_of_day: int) -> list[PatientFacts]:
        out = []
        for link, _ in self.consenting(view, study):
            f = extract_facts(link.patient, self.records_of(view, link.patient), self.config, as_of_day)
            if f is not None:
                out.append(f)
        return out

    def answer(self, view: StateReader, query_id: str, as_of_day: int,
               facts: Sequence[PatientFacts] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(answer, ``research.answer`` payload) for an anchored query, over the consenting patients.
        Raises QUERY_UNKNOWN, STUDY_UNKNOWN."""
        query = get_query(view, query_id)
        if query is None:
            raise LedgerError(f"no query {query_id}", Code.QUERY_UNKNOWN)
        study = get_study(view, query.study)
        if study is None:
            raise LedgerError(f"no study {query.study}", Code.STUDY_UNKNOWN)
        rows = self.facts(view, study, as_of_day) if facts is None else facts
        answer = answer_query(query.query, query.id, self.org, rows)
        return answer, answer_payload(answer)
