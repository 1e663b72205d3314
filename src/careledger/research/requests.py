"""The research kinds of a signed request to a custodian's gateway (docs/protocol.md section 4.3).

A research request is a signed request like every other (:mod:`careledger.vault.requests`: the
``Authorization: CareLedger-Request …`` header over the method, the target and the body; its
freshness window and its replay rule), whose JSON body is one of these typed requests. Who signs it
is the header's ``key``; when, its ``time``. Each route takes one kind:

* ``research-release``  custodian, study, recipient — a data steward (or admin) of the custodian asks
  its gateway to build, anchor and seal a release of the study for the recipient
  (``POST /v1/research/releases``);
* ``research-package``  custodian, release — the recipient fetches the sealed package
  (``POST /v1/research/packages``);
* ``research-answer``   custodian, query — a data steward has the custodian answer an aggregate query
  (``POST /v1/research/answers``);
* ``research-results``  custodian, query — a researcher of the study's sponsor fetches that answer
  (``POST /v1/research/results``);
* ``research-log``      linkage (optional) — the patient's research log (``POST /v1/research/log``).
  Signed by the *study key* itself (an unregistered key: it proves she holds the study pseudonym, and
  says nothing else), or by her registered key or her active delegate's with ``linkage``, a linkage
  statement of hers that tells the answering node which study pseudonym is hers.

The custodian-bound kinds are remembered (against replay) by that custodian's vault, as the records
gateway's are; a log request by the research gateway's own memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from careledger.contracts.consent import StudyId
from careledger.core.types import NonNegativeInt, OrgId, PublicKeyHex
from careledger.vault.requests import RequestBody

ReleaseId = Annotated[str, StringConstraints(pattern=r"^rel-[0-9a-f]{24}(-[0-9]{1,4})?$")]
QueryId = Annotated[str, StringConstraints(pattern=r"^rq-[0-9a-f]{24}(-[0-9]{1,4})?$")]
SignatureHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class LinkageFields(_Strict):
    """What a linkage statement states (docs/research.md): the patient's key and her study key for one
    scope, for ``audience`` only, on ``chain_id``."""

    audience: OrgId
    chain_id: str
    issued_ms: NonNegativeInt
    kind: Literal["careledger/study-linkage/v2"]  # study_keys.LINKAGE_KIND
    patient_key: PublicKeyHex
    scope: Literal["study", "category"]
    study_key: PublicKeyHex
    target: str


class LinkageStatement(_Strict):
    """A patient's linkage statement with both signatures
    (:func:`careledger.contracts.research.study_keys.verify_linkage_statement` checks them)."""

    statement: LinkageFields
    patient_sig: SignatureHex
    study_sig: SignatureHex

    def to_json(self) -> dict[str, Any]:
        """The statement as its signers built it (every field set, none added)."""
        return self.model_dump(mode="json")



class CustodianRequest(RequestBody):
    """A request addressed to one custodian's gateway (its vault remembers it, against replay)."""

    custodian: OrgId


class ReleaseRequest(CustodianRequest):
    """A data steward (or admin) of ``custodian`` has it build, anchor and seal a release of ``study``
    for ``recipient`` (an active researcher or admin of the study's sponsor)."""

    kind: Literal["research-release"]
    study: StudyId
    recipient: PublicKeyHex


class PackageRequest(CustodianRequest):
    """The recipient of ``release`` fetches its sealed package from ``custodian``."""

    kind: Literal["research-package"]
    release: ReleaseId


class AnswerRequest(CustodianRequest):
    """A data steward (or admin) of ``custodian`` has it answer aggregate ``query`` now."""

    kind: Literal["research-answer"]
    query: QueryId


class ResultsRequest(CustodianRequest):
    """A researcher (or admin) of the study's sponsor fetches ``custodian``'s answer to ``query``."""

    kind: Literal["research-results"]
    query: QueryId


class LogRequest(RequestBody):
    """A study pseudonym's research log: signed by its study key alone, or by the patient's (or her
    delegate's) registered key with her ``linkage`` statement."""

    kind: Literal["research-log"]
    linkage: LinkageStatement | None = Field(default=None, description="The patient's linkage statement, "
                                             "addressed to a custodian the answering node hosts; absent when "
                                             "the study key signs.")


KINDS: Mapping[str, type[RequestBody]] = {"research-release": ReleaseRequest, "research-package": PackageRequest,
                                          "research-answer": AnswerRequest, "research-results": ResultsRequest,
                                          "research-log": LogRequest}
"""Every research kind, by name: each route takes the one its path names."""


__all__ = ["KINDS", "AnswerRequest", "CustodianRequest", "LinkageFields", "LinkageStatement", "LogRequest",
           "PackageRequest", "QueryId", "ReleaseId", "ReleaseRequest", "ResultsRequest", "SignatureHex"]
