"""The Python client for research data sharing: :class:`ResearchClient` is a :class:`~careledger.client.Client`
with one method per ``research.*`` transaction, the registry reads, and each party's gateway calls.

::

    from careledger.client.research import ResearchClient, study_key
    with ResearchClient("http://127.0.0.1:8700") as client:
        study = client.register_study(researcher, spec)["receipt"]["result"]["study"]      # the sponsor
        client.consent(study_key(alice, "study", study), "study", study)                  # the patient
        client.link(alice, "study", study, "st-marys")                                    # ... and her custodian
        built = client.build_release(steward, "st-marys", study, researcher.public_hex)   # a data steward
        checked = client.verify_release(researcher, built["release"])                     # the recipient
        client.research_log(alice)                                                        # only she sees it

Parties and what they call:

* the **sponsor's researcher**: :meth:`register_study`, :meth:`new_version`, :meth:`close_study`,
  :meth:`query`, :meth:`results` (every custodian's answer, each checked against its anchor, and
  their sum), :meth:`fetch_release` and :meth:`verify_release` (the package opened with her key, the
  report's signature and signer, the files against the anchor: root, counts, Safe Harbor, k and l);
* the **patient**, off the ledger with her own seed: :func:`study_key` (her key for one study or
  category, never registered), :meth:`consent` and :meth:`revoke_consent` signed with it,
  :meth:`link` (her linkage statement, to one custodian), :meth:`research_log` and
  :meth:`access_log` (her access log with a line per release that included her); her client derives
  her study pseudonyms locally and asks for each one's log with that study key, so the node learns
  no link between them;
* a **custodian's data steward**: :meth:`build_release`, :meth:`answer`; the custodian's gateway
  signs ``research.release``, ``research.release_subjects`` and ``research.answer`` itself
  (:meth:`anchor_release`, :meth:`anchor_release_subjects` and :meth:`anchor_answer` are for a
  custodian running its own tooling).

Writes return the committed result (``result["receipt"]["code"] != 0`` for a refusal the contract
recorded); reads return the JSON documents of docs/http-api.md; errors raise
:class:`~careledger.client.ClientError`. A release that fails verification raises
:class:`~careledger.research.release.ReleaseVerificationFailed` (RELEASE_VERIFY_FAILED); a package that
does not open, :class:`~careledger.research.envelope.SealError` (RELEASE_DECRYPT_FAILED).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from careledger.client import Client, ClientError, _seg
from careledger.contracts.research import ReleaseRecord
from careledger.contracts.research.handlers import AggregateSpec, NewVersion, RegisterStudy
from careledger.contracts.research.study_keys import (
    derive_study_key,
    make_linkage_statement,
    scope_info,
    study_pseudonym,
)
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.research.aggregate import answer_hash
from careledger.research.envelope import OpenedRelease, SealedPackage, open_release
from careledger.research.release import (
    ReleaseReport,
    ReleaseVerificationFailed,
    verify_release,
    verify_report_signature,
)

__all__ = ["ReleaseRefusedError", "ResearchClient", "Scope", "combine_answers", "linkage_statement",
           "read_release_dir", "study_key", "subject_of", "write_release_dir"]

Json = dict[str, Any]
Scope = tuple[Literal["study", "category"], str]
REPORT_FILE = "report.json"


class ReleaseRefusedError(ClientError):
    """The custodian refused to build a release; ``report`` says why (which check, counts and paths, never
    values), when the refusal came from the de-identification kernel."""

    def __init__(self, error: ClientError, report: Json | None) -> None:
        super().__init__(error.code, error.name, error.message, error.http_status, error.tx_hash, error.document)
        self.report = report


def _doc(value: BaseModel | Mapping[str, Any]) -> Json:
    """A payload given as the contract's typed model or as plain JSON."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else dict(value)


def study_key(patient: SigningKey, scope: str, target: str) -> SigningKey:
    """The patient's key for a study (``scope`` ``study``, ``target`` its id) or a category of research
    (``category``, its code): derived from her seed, never registered; she signs her research consent
    and its revocation with it."""
    return derive_study_key(patient.seed, scope_info(scope, target))


def subject_of(patient: SigningKey, scope: str, target: str) -> str:
    """The study pseudonym (``sp-…``) the patient has under that scope."""
    return study_pseudonym(study_key(patient, scope, target))


def linkage_statement(patient: SigningKey, chain_id: str, scope: str, target: str, custodian: str,
                      issued_ms: int | None = None) -> Json:
    """Her linkage statement for one scope, addressed to ``custodian`` only (``issued_ms``: now unless
    given). She hands it to that custodian, or to her delegate, who shows it to that custodian's node to
    read her research log."""
    return make_linkage_statement(patient, chain_id, scope, target, custodian,
                                  int(time.time() * 1000) if issued_ms is None else issued_ms)


class ResearchClient(Client):
    """A node's HTTP API with the research calls (see the module docstring)."""

    # -- writes: one method per transaction type ---------------------------------------------------------
    def research(self, key: SigningKey, action: str, payload: Json, wait: bool = True) -> Json:
        """Send ``research.<action>`` (version 1) signed by ``key``."""
        return self.send(key, f"research.{action}", 1, payload, wait=wait)

    def register_study(self, key: SigningKey, study: RegisterStudy | Mapping[str, Any]) -> Json:
        """Register a data-sharing study (a researcher or admin of its sponsor); the result names it."""
        return self.research(key, "register_study", _doc(study))

    def new_version(self, key: SigningKey, version: NewVersion | Mapping[str, Any]) -> Json:
        """Publish the study's next version (``reconsent``: earlier consents stop covering it)."""
        return self.research(key, "new_version", _doc(version))

    def close_study(self, key: SigningKey, study: str) -> Json:
        return self.research(key, "close_study", {"study": study})

    def consent(self, study_key: SigningKey, scope: Literal["study", "category"], target: str,
                resource_types: Sequence[str] = ()) -> Json:
        """Opt in (signed with the patient's study key for this scope; ``resource_types`` limits it)."""
        return self.research(study_key, "consent", {"resource_types": list(resource_types), "scope": scope,
                                                    "target": target})

    def revoke_consent(self, study_key: SigningKey, consent: str) -> Json:
        """Revoke a research consent with the study key that gave it; no later release relies on it."""
        return self.research(study_key, "revoke_consent", {"consent": consent})

    def anchor_release(self, key: SigningKey, payload: Mapping[str, Any]) -> Json:
        """``research.release`` as a custodian's tooling builds it (the gateway does this itself)."""
        return self.research(key, "release", dict(payload))

    def anchor_release_subjects(self, key: SigningKey, release: str, entries: Sequence[tuple[str, str]]) -> Json:
        """``research.release_subjects``: more (study pseudonym, consent) pairs of a release's snapshot."""
        return self.research(key, "release_subjects", {"entries": [{"consent": c, "subject": s} for s, c in entries],
                                                       "release": release})

    def query(self, key: SigningKey, study: str, spec: AggregateSpec | Mapping[str, Any]) -> Json:
        """Anchor an aggregate count or sum query for every custodian (a researcher of the sponsor)."""
        return self.research(key, "query", {"query": _doc(spec), "study": study})

    def anchor_answer(self, key: SigningKey, payload: Mapping[str, Any]) -> Json:
        """``research.answer`` as a custodian's tooling builds it (the gateway does this itself)."""
        return self.research(key, "answer", dict(payload))

    # -- the registry ------------------------------------------------------------------------------------
    def studies(self, kind: str | None = None, status: str | None = None) -> list[Json]:
        params = {k: v for k, v in (("kind", kind), ("status", status)) if v}
        return list(self.request("GET", "/v1/research/studies", params=params)["studies"])

    def study(self, study: str, version: int | None = None) -> Json:
        """``{study, versions, releases}``; the study as it was at ``version`` when given."""
        params = {"version": version} if version is not None else {}
        return self.request("GET", f"/v1/research/studies/{_seg(study)}", params=params)

    def release_anchor(self, release: str) -> Json:
        return self.request("GET", f"/v1/research/releases/{_seg(release)}")

    def query_record(self, query: str) -> Json:
        """``{query, answers}``: the query and every custodian's anchored answer."""
        return self.request("GET", f"/v1/research/queries/{_seg(query)}")

    # -- the gateways ------------------------------------------------------------------------------------
    def gateway(self, custodian: str) -> ResearchClient:
        """The custodian's gateway: its organisation's ``api`` on the ledger, else this node."""
        url = self.organisation(custodian).get("api")
        return ResearchClient(url, timeout=self.timeout) if url else self

    def _at(self, custodian: str, path: str, key: SigningKey, kind: str, fields: Json,
            timeout: float | None = None) -> Json:
        """POST a signed request of ``key`` whose body is ``kind`` with ``fields`` to ``custodian``'s gateway
        (docs/protocol.md section 4.3)."""
        return self._at_gateway(custodian, path, {"kind": kind, **fields}, sign=key, timeout=timeout)

    def _at_gateway(self, custodian: str, path: str, body: Json, *, sign: SigningKey | None = None,
                    timeout: float | None = None) -> Json:
        gateway = self.gateway(custodian)
        try:
            return gateway.request("POST", path, json=body, sign=sign, timeout=timeout)
        finally:
            if gateway is not self:
                gateway.close()

    def link(self, patient: SigningKey, scope: Literal["study", "category"], target: str, custodian: str) -> Json:
        """Hand ``custodian`` the patient's linkage statement for this scope, so it can select her records."""
        statement = linkage_statement(patient, self.chain_id(), scope, target, custodian)
        return self._at_gateway(custodian, "/v1/research/linkage", {"custodian": custodian, "statement": statement})

    def build_release(self, steward: SigningKey, custodian: str, study: str, recipient: str,
                      timeout: float = 600.0) -> Json:
        """Have ``custodian`` build, anchor and seal a release of ``study`` for ``recipient`` (an admin or data
        steward of the custodian signs). A refusal raises ClientError; the node's ``report`` says why."""
        try:
            return self._at(custodian, "/v1/research/releases", steward, "research-release",
                            {"custodian": custodian, "recipient": recipient, "study": study}, timeout)
        except ClientError as exc:
            report = exc.document.get("report") if exc.document is not None else None
            raise ReleaseRefusedError(exc, report if isinstance(report, dict) else None) from None

    def package(self, recipient: SigningKey, release: str, custodian: str | None = None) -> SealedPackage:
        """The sealed package of ``release`` (its recipient only)."""
        custodian = custodian or str(self.release_anchor(release)["custodian"])
        doc = self._at(custodian, "/v1/research/packages", recipient, "research-package",
                       {"custodian": custodian, "release": release}, timeout=120)
        return SealedPackage.from_json(doc["package"])

    def fetch_release(self, recipient: SigningKey, release: str) -> OpenedRelease:
        """The package of ``release`` fetched and opened with the recipient's key (not yet verified)."""
        opened = open_release(self.package(recipient, release), recipient)
        if opened.release != release:
            raise ReleaseVerificationFailed(f"the package is of release {opened.release}, not {release}")
        return opened

    def verify_release(self, recipient: SigningKey | None, release: str, opened: OpenedRelease | None = None) -> Json:
        """Check a release against its anchor, and the report's signer: fetched and opened with
        ``recipient`` unless ``opened`` is given (files read from disk, say).

        Checks, in order: the report is signed by the key it names, and that key is an active admin or
        data steward of the custodian; then :func:`careledger.research.release.verify_release` (the report
        says what the anchor says, the anchor is complete, file hashes, the NDJSON records give the
        anchored Merkle root and count, Safe Harbor on every resource, k and l measured on the data, the
        CSV). Returns what was checked; raises :class:`ReleaseVerificationFailed` at the first failure."""
        if opened is None:
            if recipient is None:
                raise ValueError("give the recipient's key or the opened release")
            opened = self.fetch_release(recipient, release)
        anchor = ReleaseRecord.from_json(self.release_anchor(release))
        report = ReleaseReport.from_json(opened.report)
        if opened.signer is None:
            raise ReleaseVerificationFailed(f"release {release}: the package does not name the report's signer")
        verify_report_signature(opened.signer, self.chain_id(), report, opened.signature)
        signer = self.key_info(opened.signer)
        if not signer.get("active") or signer.get("org") != anchor.custodian or not (
                signer.get("kind") == "admin" or "data_steward" in signer.get("roles", [])):
            raise ReleaseVerificationFailed(f"release {release}: the report's signer is not a data steward or admin "
                                            f"of {anchor.custodian}")
        anonymity = self.study(anchor.study, anchor.study_version)["study"]["anonymity"]
        checked = verify_release(opened.files, report, anchor, tuple(anonymity["sensitive_codes"]),
                                 anonymity["sensitive_type"])
        return {**checked, "study": anchor.study, "custodian": anchor.custodian, "signer": opened.signer,
                "k_required": anchor.k_required, "files": sorted(opened.files), "verified": True}

    def answer(self, steward: SigningKey, custodian: str, query: str) -> Json:
        """Have ``custodian`` answer ``query`` now (its gateway also answers committed queries by itself)."""
        return self._at(custodian, "/v1/research/answers", steward, "research-answer",
                        {"custodian": custodian, "query": query}, timeout=600)

    def results(self, researcher: SigningKey, query: str, wait_s: float = 0.0) -> Json:
        """Every custodian's anchored answer to ``query``, each fetched from its gateway and checked
        against its anchored hash, and their sum per cell (a cell withheld anywhere is ``partial``).
        ``wait_s``: wait up to this long for at least one answer to be anchored."""
        deadline = time.monotonic() + wait_s
        record = self.query_record(query)
        while not record["answers"] and time.monotonic() < deadline:
            time.sleep(0.1)
            record = self.query_record(query)
        answers = []
        for anchor in record["answers"]:
            got = self._at(anchor["custodian"], "/v1/research/results", researcher, "research-results",
                           {"custodian": anchor["custodian"], "query": query})
            if answer_hash(got["answer"]) != anchor["answer_hash"]:
                raise ClientError(int(Code.COMMITMENT_MISMATCH), Code.COMMITMENT_MISMATCH.name,
                                  f"{anchor['custodian']}'s answer does not match its anchored hash", None)
            answers.append(got["answer"])
        return {"query": record["query"], "answers": answers, "combined": combine_answers(answers)}

    # -- the patient's view ------------------------------------------------------------------------------
    def scopes(self) -> list[Scope]:
        """Every scope a patient may have consented under: each data-sharing study and each category."""
        studies = self.studies(kind="data")
        out: list[Scope] = [("study", s["id"]) for s in studies]
        out += [("category", c) for c in sorted({s["category"] for s in studies})]
        return out

    def log_of(self, key: SigningKey, linkage: Json | None = None) -> Json:
        """One study pseudonym's research log: signed by its study ``key``, or by the patient's (or her
        delegate's) registered key with her ``linkage`` statement."""
        fields = {"linkage": linkage} if linkage is not None else {}
        return self.request("POST", "/v1/research/log", json={"kind": "research-log", **fields}, sign=key)

    def research_log(self, patient: SigningKey, scopes: Iterable[Scope] | None = None) -> Json:
        """Her research log across ``scopes`` (default: every study and category of the registry), each
        asked for with its own study key: ``{studies, releases, consents}``, releases oldest first."""
        releases: list[Json] = []
        consents: list[Json] = []
        for scope, target in (self.scopes() if scopes is None else scopes):
            doc = self.log_of(study_key(patient, scope, target))
            releases += [{**r, "scope": scope, "subject": doc["subject"]} for r in doc["releases"]]
            consents += doc["consents"]
        releases.sort(key=lambda r: (r["height"], r["release"]))
        return {"studies": sorted({r["study"] for r in releases}), "releases": releases, "consents": consents}

    def access_log(self, patient: SigningKey, scopes: Iterable[Scope] | None = None) -> list[Json]:
        """Her access log (every read of her records, from the records view) with one line per release that
        included her ("de-identified data released to study X on date Y"), by block height."""
        view = {"kind": "view", "format": "json", "patient": _pseudonym(patient)}
        reads = [{**e, "kind": "access"} for e in self.request("POST", "/v1/records/query", json=view, sign=patient)
                 ["access_log"]]
        released = [{**r, "kind": "research_release"} for r in self.research_log(patient, scopes)["releases"]]
        return sorted(reads + released, key=lambda e: (e["height"], e["kind"]))


def _pseudonym(key: SigningKey) -> str:
    from careledger.contracts.identity import compute_pseudonym

    return compute_pseudonym(key.public_hex)


def combine_answers(answers: Sequence[Json]) -> list[Json]:
    """The sum of several custodians' answers, cell by cell: counts and sums of the cells each shows; a cell
    some custodian withheld is ``partial`` (its shown total is a lower bound, null when every custodian
    withheld it) and names who withheld it."""
    cells: dict[tuple[tuple[str, str], ...], Json] = {}
    for a in answers:
        for cell in a["cells"]:
            key = tuple(sorted(cell["group"].items()))
            out = cells.setdefault(key, {"group": cell["group"], "count": None, "partial": False, "withheld_by": []})
            if cell["suppressed"]:
                out["partial"] = True
                out["withheld_by"].append(a["custodian"])
                continue
            out["count"] = (out["count"] or 0) + cell["count"]
            if "sum" in cell:
                out["sum"] = str(Decimal(out.get("sum") or "0") + Decimal(cell["sum"]))
    return [cells[k] for k in sorted(cells)]


def write_release_dir(opened: OpenedRelease, directory: Path) -> list[Path]:
    """Write a received release to ``directory``: its files, and ``report.json`` (the report, its signature
    and signer, the release id) so :func:`read_release_dir` can verify it again later."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in sorted(opened.files.items()):
        path = directory / name
        path.write_bytes(data)
        written.append(path)
    meta = directory / REPORT_FILE
    meta.write_text(json.dumps({"release": opened.release, "report": opened.report, "signature": opened.signature,
                                "signer": opened.signer}, indent=2, sort_keys=True) + "\n")
    return [*written, meta]


def read_release_dir(directory: Path) -> OpenedRelease:
    """A release written by :func:`write_release_dir` (its files as they are now on disk)."""
    import json

    meta = json.loads((directory / REPORT_FILE).read_text())
    files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != REPORT_FILE and p.is_file()}
    return OpenedRelease(str(meta["release"]), files, dict(meta["report"]), str(meta["signature"]),
                         meta.get("signer"))
