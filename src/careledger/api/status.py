"""The one table from a result code to its HTTP status. Every route answers through it.

Each :class:`~careledger.core.errors.Code` has exactly one status, chosen by what the code says about
the request, whichever route or engine raised it:

=====  ====================================================================================================
400    the request itself is malformed: encoding, shape, identifier syntax, an EPCIS document's schema
401    who signed cannot be established: signature, chain, unknown signer, stale signed request
403    the signer is known but not allowed: revoked, role, custodianship, consent, ownership
404    the request names something that does not exist
405    the route exists, not with this method
409    it conflicts with what already exists or was already done: duplicates, replays, nonce order,
       closed proposals, version conflicts
410    it names something that existed and was destroyed (an erased record)
413    the body is larger than the limit
415    the body is not declared as JSON
422    well-formed and authorised, but the contract's rules refuse it given the current state
500    the node is at fault (corrupt store or vault, bad genesis, a misconfigured home, an unexpected error)
502    the custodian's gateway answered content that fails its ledger anchor (raised by the client)
503    the node cannot take it now (mempool full, engine unavailable)
504    it did not happen within the time asked
=====  ====================================================================================================

``OK`` (0) is 200. The table is complete (a test holds it to :class:`Code` and to the table in
``docs/http-api.md``, row for row); a code appended without a row answers 500 and is logged.
"""

from __future__ import annotations

import logging
from types import MappingProxyType

from careledger.core.errors import Code

log = logging.getLogger("careledger.api")

C = Code
HTTP_STATUS: MappingProxyType[Code, int] = MappingProxyType({
    C.OK: 200,
    # 1xx encoding and shape
    C.MALFORMED_ENCODING: 400, C.NON_CANONICAL_ENCODING: 400, C.OVERSIZED: 413, C.UNKNOWN_TX_TYPE: 400,
    C.INVALID_PAYLOAD: 400,
    # 2xx signer
    C.WRONG_CHAIN: 401, C.BAD_SIGNATURE: 401, C.MISSING_SIGNATURE: 401, C.UNKNOWN_SIGNER: 401,
    C.SIGNER_REVOKED: 403, C.UNAUTHORISED: 403,
    # 3xx ordering and replay
    C.NONCE_REPLAYED: 409, C.NONCE_OUT_OF_ORDER: 409, C.DUPLICATE_TX: 409, C.MEMPOOL_FULL: 503,
    C.TX_EXPIRED: 409,
    # 4xx generic contract outcomes
    C.NOT_FOUND: 404, C.ALREADY_EXISTS: 409, C.INVALID_STATE: 409, C.LIMIT_EXCEEDED: 422,
    # 9xx node
    C.INVALID_GENESIS: 500, C.STORE_CORRUPTED: 500, C.TIMEOUT: 504, C.NODE_UNAVAILABLE: 503, C.BAD_REQUEST: 400,
    C.UNSUPPORTED_MEDIA_TYPE: 415, C.METHOD_NOT_ALLOWED: 405, C.INTERNAL_ERROR: 500,
    # 910-919 the command line and local files: never an HTTP answer; a node that met one is misconfigured
    C.HOME_INVALID: 500, C.KEY_FILE_INVALID: 500, C.FILE_UNREADABLE: 500, C.NETWORK_INVALID: 500,
    # 1000 identity
    C.ORG_UNKNOWN: 404, C.ORG_INACTIVE: 422, C.ROLE_NOT_ALLOWED: 422, C.MEMBER_EXISTS: 409,
    C.MEMBER_UNKNOWN: 404, C.PATIENT_EXISTS: 409, C.KEY_IN_USE: 409,
    # 1100 governance
    C.PROPOSAL_UNKNOWN: 404, C.PROPOSAL_CLOSED: 409, C.ALREADY_VOTED: 409, C.PROPOSAL_INVALID: 422,
    # 2000 records
    C.FHIR_INVALID: 422, C.RECORD_EXISTS: 409, C.RECORD_UNKNOWN: 404, C.RECORD_VERSION_CONFLICT: 409,
    C.RECORD_ERASED: 410, C.RECORD_PATIENT_MISMATCH: 403, C.NOT_CUSTODIAN: 403, C.VAULT_INTEGRITY: 500,
    C.ERASURE_NOT_ALLOWED: 403, C.PATIENT_UNKNOWN: 404, C.FHIR_UNSUPPORTED: 422, C.COMMITMENT_MISMATCH: 502,
    C.VAULT_NOT_HOSTED: 404,
    # 2100 consent
    C.CONSENT_REQUIRED: 403, C.CONSENT_DENIED: 403, C.CONSENT_PURPOSE_NOT_COVERED: 403,
    C.CONSENT_TYPE_NOT_COVERED: 403, C.CONSENT_PERIOD_NOT_COVERED: 403, C.CONSENT_REVOKED: 403,
    C.CONSENT_UNKNOWN: 404, C.NOT_PATIENT_OR_DELEGATE: 403, C.DELEGATE_UNKNOWN: 404,
    C.EMERGENCY_ROLE_REQUIRED: 403, C.BREAK_GLASS_REQUIRED: 403, C.CONSENT_RECORD_NOT_COVERED: 403,
    # 2200 signed requests and audit
    C.REQUEST_STALE: 401, C.REQUEST_REPLAYED: 409, C.REQUEST_MALFORMED: 400, C.AUDIT_NOT_CUSTODIAN: 403,
    # 3000 supply
    C.BAD_CHECK_DIGIT: 400, C.MALFORMED_IDENTIFIER: 400, C.MALFORMED_URN: 400, C.MALFORMED_DIGITAL_LINK: 400,
    C.MALFORMED_ELEMENT_STRING: 400, C.BAD_DATE: 400, C.ILLEGAL_CHARACTER: 400, C.FIELD_TOO_LONG: 400,
    C.UNSUPPORTED_AI: 400, C.PRODUCT_UNKNOWN: 404, C.PRODUCT_EXISTS: 409, C.GTIN_NOT_OWNED: 403,
    C.SERIAL_UNKNOWN: 404, C.SERIAL_EXISTS: 409, C.LOT_MISMATCH: 422, C.EXPIRY_MISMATCH: 422,
    C.PACK_EXPIRED: 422, C.LOT_RECALLED: 422, C.PRODUCT_WITHDRAWN: 422, C.PACK_INACTIVE: 422,
    C.PACK_STOLEN: 422, C.PACK_DESTROYED: 422, C.PACK_LOCKED: 422, C.NOT_HOLDER: 403, C.NOT_CONSIGNEE: 403,
    C.NOT_IN_TRANSIT: 422, C.PACK_IN_TRANSIT: 422, C.UNDO_WINDOW_EXCEEDED: 422, C.UNDO_OTHER_PARTY: 403,
    C.UNDO_STATE_MISMATCH: 422, C.EVENT_OUT_OF_ORDER: 422, C.EPCIS_SCHEMA_INVALID: 400,
    C.EPCIS_CBV_INVALID: 400, C.EPCIS_UNSUPPORTED: 400, C.CONTAINER_UNKNOWN: 404, C.PACK_AGGREGATED: 422,
    C.TOO_MANY_ITEMS: 422, C.LOT_UNKNOWN: 404, C.PARTY_UNKNOWN: 404,
    # 4000 claims, 4100 adjudication findings
    C.CLAIM_NOT_PROVIDER: 403, C.CLAIM_NOT_INSURER: 403, C.CLAIM_COVERAGE_UNKNOWN: 404,
    C.CLAIM_COVERAGE_MISMATCH: 422, C.CLAIM_COVERAGE_INACTIVE: 422, C.CLAIM_COVERAGE_PERIOD: 422,
    C.CLAIM_UNKNOWN: 404, C.CLAIM_EXISTS: 409, C.CLAIM_ALREADY_PAID: 409, C.CLAIM_BAD_TRANSITION: 422,
    C.CLAIM_RELATED_INVALID: 422, C.CLAIM_COB_INVALID: 422, C.CLAIM_CONTENT_MISMATCH: 422,
    C.CLAIM_LINES_MISMATCH: 422, C.CLAIM_OUTCOME_INCONSISTENT: 422, C.CLAIM_PLAN_UNKNOWN: 404,
    C.CLAIM_PLAN_NOT_IN_FORCE: 422, C.CLAIM_PLAN_VERSION_CONFLICT: 409, C.CLAIM_TABLE_UNKNOWN: 404,
    C.CLAIM_TABLE_NOT_IN_FORCE: 422, C.CLAIM_TABLE_EXISTS: 409, C.CLAIM_ACCUMULATOR_STALE: 409,
    C.COVERAGE_ORDER_CONFLICT: 409, C.CLAIM_NOT_PARTY: 403, C.CLAIM_CONTENT_INVALID: 422, C.COVERAGE_INVALID: 422,
    C.PLAN_RULES_INVALID: 400, C.EDIT_TABLE_INVALID: 400, C.ADJUDICATION_INPUT_MISMATCH: 422,
    C.FINGERPRINT_MISMATCH: 422, C.ADJUDICATION_DIFFERS: 422,
    # 5000 trials
    C.TRIAL_UNKNOWN: 404, C.TRIAL_NOT_SPONSOR: 403, C.TRIAL_REGISTRATION_INVALID: 422, C.TRIAL_NOT_RECRUITING: 422,
    C.TRIAL_LOCKED: 422, C.TRIAL_NOT_LOCKED: 422, C.TRIAL_STATUS_INVALID: 422, C.TRIAL_PROTOCOL_VERSION_CONFLICT: 409,
    C.TRIAL_SITE_UNKNOWN: 404, C.TRIAL_SITE_INACTIVE: 422, C.TRIAL_SITE_EXISTS: 409, C.TRIAL_NOT_SITE_STAFF: 403,
    C.TRIAL_INVESTIGATOR_INVALID: 422, C.TRIAL_ETHICS_NOT_APPROVED: 422, C.TRIAL_CONSENT_REQUIRED: 403,
    C.TRIAL_CONSENT_STALE: 403, C.TRIAL_CONSENT_WITHDRAWN: 403, C.TRIAL_CONSENT_FORM_MISMATCH: 422,
    C.TRIAL_CONSENT_NOT_STUDY_KEY: 403, C.TRIAL_SUBJECT_ENROLLED: 409, C.TRIAL_SUBJECT_UNKNOWN: 404,
    C.TRIAL_ENROLMENT_FULL: 422, C.TRIAL_RECONSENT_REQUIRED: 403, C.TRIAL_SUBJECT_NOT_AT_SITE: 403,
    C.TRIAL_ALLOCATION_MISMATCH: 422, C.TRIAL_ALLOCATION_OUT_OF_ORDER: 409, C.TRIAL_STRATUM_UNKNOWN: 404,
    C.TRIAL_STRATUM_EXHAUSTED: 422, C.TRIAL_ALLOCATION_REQUIRED: 422, C.TRIAL_ALLOCATION_UNBLINDS: 422,
    C.TRIAL_ARM_UNKNOWN: 404, C.TRIAL_NOT_RANDOMISED: 422, C.TRIAL_ALREADY_UNBLINDED: 409, C.TRIAL_VISIT_EXISTS: 409,
    C.TRIAL_VISIT_VERSION_CONFLICT: 409, C.TRIAL_LOCK_ROOT_MISMATCH: 422, C.TRIAL_AE_UNKNOWN: 404,
    C.TRIAL_NOT_SUSAR: 422, C.TRIAL_REPORT_DUPLICATE: 409, C.TRIAL_REPORT_OUT_OF_ORDER: 422,
    C.TRIAL_RESULTS_EXIST: 409, C.TRIAL_RESULTS_INVALID: 422,
})
del C

UNLISTED_STATUS = 500


def http_status(code: Code) -> int:
    """The HTTP status of an answer carrying ``code`` (:data:`HTTP_STATUS`). A code missing from the
    table is a release defect (the status-table test fails); it answers 500 and is logged."""
    status = HTTP_STATUS.get(code)
    if status is None:
        log.error("code %s (%d) has no HTTP status in careledger.api.status", code.name, int(code))
        return UNLISTED_STATUS
    return status
