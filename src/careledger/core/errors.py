"""Every way CareLedger refuses something, as a stable numeric code.

Exception tree::

    LedgerError                      (code, message; message is for humans, never hashed)
    ├── InvalidTx                    the transaction can never enter a block (admission / block building)
    │   ├── EncodingError            malformed, non-canonical or oversized bytes
    │   ├── AuthError                chain id, signature, signer membership
    │   └── NonceError               replayed, out-of-order or duplicate transaction
    ├── TxFailed                     included in a block with a non-zero receipt, writes rolled back
    ├── GenesisError                 the genesis file is not a valid consortium declaration
    ├── StoreCorrupted               a stored file fails an integrity check
    └── NotFound                     a query names something that does not exist

Codes are grouped by range: 1xx encoding, 2xx authentication, 3xx ordering, 4xx generic contract
failures, 9xx node. Each contract owns a range of its own (identity 1000, governance 1100, records
2000, consent 2100, audit 2200, supply 3000, claims 4000, trials 5000). Codes never change meaning
once released; new ones are appended.
"""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """Stable result codes. 0 is success."""

    OK = 0
    # 1xx: encoding and shape
    MALFORMED_ENCODING = 101
    NON_CANONICAL_ENCODING = 102
    OVERSIZED = 103
    UNKNOWN_TX_TYPE = 104
    INVALID_PAYLOAD = 105
    # 2xx: authentication and authorisation of the signer
    WRONG_CHAIN = 201
    BAD_SIGNATURE = 202
    MISSING_SIGNATURE = 203
    UNKNOWN_SIGNER = 204
    SIGNER_REVOKED = 205
    UNAUTHORISED = 206
    # 3xx: ordering and replay
    NONCE_REPLAYED = 301
    NONCE_OUT_OF_ORDER = 302
    DUPLICATE_TX = 303
    MEMPOOL_FULL = 304
    TX_EXPIRED = 305
    # 4xx: generic contract outcomes
    NOT_FOUND = 401
    ALREADY_EXISTS = 402
    INVALID_STATE = 403
    LIMIT_EXCEEDED = 404
    # 9xx: node
    INVALID_GENESIS = 901
    STORE_CORRUPTED = 902
    TIMEOUT = 903
    NODE_UNAVAILABLE = 904
    BAD_REQUEST = 905
    UNSUPPORTED_MEDIA_TYPE = 906
    METHOD_NOT_ALLOWED = 907
    # 910-919: the command line and files on this machine (never on the ledger)
    HOME_INVALID = 910
    KEY_FILE_INVALID = 911
    FILE_UNREADABLE = 912
    NETWORK_INVALID = 913
    INTERNAL_ERROR = 999
    # 1000: identity
    ORG_UNKNOWN = 1001
    ORG_INACTIVE = 1002
    ROLE_NOT_ALLOWED = 1003
    MEMBER_EXISTS = 1004
    MEMBER_UNKNOWN = 1005
    PATIENT_EXISTS = 1006
    KEY_IN_USE = 1007
    # 1100: governance
    PROPOSAL_UNKNOWN = 1101
    PROPOSAL_CLOSED = 1102
    ALREADY_VOTED = 1103
    PROPOSAL_INVALID = 1104
    # 2000: records (vault, anchors, erasure)
    FHIR_INVALID = 2001
    RECORD_EXISTS = 2002
    RECORD_UNKNOWN = 2003
    RECORD_VERSION_CONFLICT = 2004
    RECORD_ERASED = 2005
    RECORD_PATIENT_MISMATCH = 2006
    NOT_CUSTODIAN = 2007
    VAULT_INTEGRITY = 2008
    ERASURE_NOT_ALLOWED = 2009
    PATIENT_UNKNOWN = 2010
    FHIR_UNSUPPORTED = 2011
    COMMITMENT_MISMATCH = 2012
    VAULT_NOT_HOSTED = 2013
    # 2100: consent
    CONSENT_REQUIRED = 2101
    CONSENT_DENIED = 2102
    CONSENT_PURPOSE_NOT_COVERED = 2103
    CONSENT_TYPE_NOT_COVERED = 2104
    CONSENT_PERIOD_NOT_COVERED = 2105
    CONSENT_REVOKED = 2106
    CONSENT_UNKNOWN = 2107
    NOT_PATIENT_OR_DELEGATE = 2108
    DELEGATE_UNKNOWN = 2109
    EMERGENCY_ROLE_REQUIRED = 2110
    BREAK_GLASS_REQUIRED = 2111
    CONSENT_RECORD_NOT_COVERED = 2112
    # 2200: access requests and audit
    REQUEST_STALE = 2201
    REQUEST_REPLAYED = 2202
    REQUEST_MALFORMED = 2203
    AUDIT_NOT_CUSTODIAN = 2204
    # 3000: supply
    BAD_CHECK_DIGIT = 3001
    MALFORMED_IDENTIFIER = 3002
    MALFORMED_URN = 3003
    MALFORMED_DIGITAL_LINK = 3004
    MALFORMED_ELEMENT_STRING = 3005
    BAD_DATE = 3006
    ILLEGAL_CHARACTER = 3007
    FIELD_TOO_LONG = 3008
    UNSUPPORTED_AI = 3009
    PRODUCT_UNKNOWN = 3010
    PRODUCT_EXISTS = 3011
    GTIN_NOT_OWNED = 3012
    SERIAL_UNKNOWN = 3013
    SERIAL_EXISTS = 3014
    LOT_MISMATCH = 3015
    EXPIRY_MISMATCH = 3016
    PACK_EXPIRED = 3017
    LOT_RECALLED = 3018
    PRODUCT_WITHDRAWN = 3019
    PACK_INACTIVE = 3020
    PACK_STOLEN = 3021
    PACK_DESTROYED = 3022
    PACK_LOCKED = 3023
    NOT_HOLDER = 3024
    NOT_CONSIGNEE = 3025
    NOT_IN_TRANSIT = 3026
    PACK_IN_TRANSIT = 3027
    UNDO_WINDOW_EXCEEDED = 3028
    UNDO_OTHER_PARTY = 3029
    UNDO_STATE_MISMATCH = 3030
    EVENT_OUT_OF_ORDER = 3031
    EPCIS_SCHEMA_INVALID = 3032
    EPCIS_CBV_INVALID = 3033
    EPCIS_UNSUPPORTED = 3034
    CONTAINER_UNKNOWN = 3035
    PACK_AGGREGATED = 3036
    TOO_MANY_ITEMS = 3037
    LOT_UNKNOWN = 3038
    PARTY_UNKNOWN = 3039
    # 4000: claims (the ledger's checks)
    CLAIM_NOT_PROVIDER = 4001
    CLAIM_NOT_INSURER = 4002
    CLAIM_COVERAGE_UNKNOWN = 4003
    CLAIM_COVERAGE_MISMATCH = 4004
    CLAIM_COVERAGE_INACTIVE = 4005
    CLAIM_COVERAGE_PERIOD = 4006
    CLAIM_UNKNOWN = 4007
    CLAIM_EXISTS = 4008
    CLAIM_ALREADY_PAID = 4009
    CLAIM_BAD_TRANSITION = 4010
    CLAIM_RELATED_INVALID = 4011
    CLAIM_COB_INVALID = 4012
    CLAIM_CONTENT_MISMATCH = 4013
    CLAIM_LINES_MISMATCH = 4014
    CLAIM_OUTCOME_INCONSISTENT = 4015
    CLAIM_PLAN_UNKNOWN = 4016
    CLAIM_PLAN_NOT_IN_FORCE = 4017
    CLAIM_PLAN_VERSION_CONFLICT = 4018
    CLAIM_TABLE_UNKNOWN = 4019
    CLAIM_TABLE_NOT_IN_FORCE = 4020
    CLAIM_TABLE_EXISTS = 4021
    CLAIM_ACCUMULATOR_STALE = 4022
    COVERAGE_ORDER_CONFLICT = 4023
    CLAIM_NOT_PARTY = 4024
    # 4100: claims (adjudication findings, off-ledger)
    CLAIM_CONTENT_INVALID = 4101
    COVERAGE_INVALID = 4102
    PLAN_RULES_INVALID = 4103
    EDIT_TABLE_INVALID = 4104
    ADJUDICATION_INPUT_MISMATCH = 4105
    FINGERPRINT_MISMATCH = 4106
    ADJUDICATION_DIFFERS = 4107
    # 5000: clinical trials (registration, protocol, sites, consent, enrolment, randomisation, visits,
    # lock, safety reporting, results)
    TRIAL_UNKNOWN = 5001
    TRIAL_NOT_SPONSOR = 5002
    TRIAL_REGISTRATION_INVALID = 5003
    TRIAL_NOT_RECRUITING = 5004
    TRIAL_LOCKED = 5005
    TRIAL_NOT_LOCKED = 5006
    TRIAL_STATUS_INVALID = 5007
    TRIAL_PROTOCOL_VERSION_CONFLICT = 5008
    TRIAL_SITE_UNKNOWN = 5010
    TRIAL_SITE_INACTIVE = 5011
    TRIAL_SITE_EXISTS = 5012
    TRIAL_NOT_SITE_STAFF = 5013
    TRIAL_INVESTIGATOR_INVALID = 5014
    TRIAL_ETHICS_NOT_APPROVED = 5015
    TRIAL_CONSENT_REQUIRED = 5020
    TRIAL_CONSENT_STALE = 5021
    TRIAL_CONSENT_WITHDRAWN = 5022
    TRIAL_CONSENT_FORM_MISMATCH = 5023
    TRIAL_CONSENT_NOT_STUDY_KEY = 5024
    TRIAL_SUBJECT_ENROLLED = 5025
    TRIAL_SUBJECT_UNKNOWN = 5026
    TRIAL_ENROLMENT_FULL = 5027
    TRIAL_RECONSENT_REQUIRED = 5028
    TRIAL_SUBJECT_NOT_AT_SITE = 5029
    TRIAL_ALLOCATION_MISMATCH = 5030
    TRIAL_ALLOCATION_OUT_OF_ORDER = 5031
    TRIAL_STRATUM_UNKNOWN = 5032
    TRIAL_STRATUM_EXHAUSTED = 5033
    TRIAL_ALLOCATION_REQUIRED = 5034
    TRIAL_ALLOCATION_UNBLINDS = 5035
    TRIAL_ARM_UNKNOWN = 5036
    TRIAL_NOT_RANDOMISED = 5037
    TRIAL_ALREADY_UNBLINDED = 5038
    TRIAL_VISIT_EXISTS = 5040
    TRIAL_VISIT_VERSION_CONFLICT = 5041
    TRIAL_LOCK_ROOT_MISMATCH = 5042
    TRIAL_AE_UNKNOWN = 5050
    TRIAL_NOT_SUSAR = 5051
    TRIAL_REPORT_DUPLICATE = 5052
    TRIAL_REPORT_OUT_OF_ORDER = 5053
    TRIAL_RESULTS_EXIST = 5060
    TRIAL_RESULTS_INVALID = 5061
    # 6000: research data sharing (studies, research consent, releases, aggregate queries)
    STUDY_UNKNOWN = 6001
    STUDY_CLOSED = 6002
    NOT_STUDY_SPONSOR = 6003
    STUDY_VERSION_CONFLICT = 6004
    STUDY_INVALID = 6005
    STUDY_KIND_MISMATCH = 6006
    RESEARCH_CONSENT_UNKNOWN = 6010
    RESEARCH_CONSENT_REVOKED = 6011
    NOT_CONSENT_SUBJECT = 6012
    STUDY_KEY_REGISTERED = 6013
    RESEARCH_CONSENT_NOT_COVERING = 6014
    RESEARCH_CONSENT_EXISTS = 6015
    RELEASE_UNKNOWN = 6020
    RELEASE_K_TOO_LOW = 6021
    RELEASE_L_TOO_LOW = 6022
    RELEASE_TYPES_NOT_REQUESTED = 6023
    RELEASE_RECIPIENT_INVALID = 6024
    RELEASE_COMPLETE = 6025
    RELEASE_SNAPSHOT_MISMATCH = 6026
    RELEASE_SUBJECT_DUPLICATE = 6027
    RELEASE_COUNT_MISMATCH = 6028
    NOT_RELEASE_CUSTODIAN = 6029
    RELEASE_RULES_MISMATCH = 6030
    QUERY_UNKNOWN = 6040
    QUERY_ANSWERED = 6041
    QUERY_INVALID = 6042
    # 6100: research kernels (off-ledger: de-identification, k-anonymity, delivery, verification)
    DEID_CONFIG_INVALID = 6101
    DEID_IDENTIFIER_LEFT = 6102
    DEID_K_NOT_MET = 6103
    DEID_L_NOT_MET = 6104
    DEID_EMPTY_RELEASE = 6105
    RELEASE_VERIFY_FAILED = 6106
    RELEASE_DECRYPT_FAILED = 6107
    LINKAGE_INVALID = 6108
    LINKAGE_UNKNOWN = 6109

    # 3000 supply, continued (issue 18): locations, idempotent and multi-party EPCIS capture
    LOCATION_UNKNOWN = 3040
    LOCATION_EXISTS = 3041
    GLN_NOT_OWNED = 3042
    PREFIX_OVERLAP = 3043
    EPCIS_ALREADY_CAPTURED = 3044
    EPCIS_DUPLICATE_EVENTS = 3045
    CAPTURE_UNKNOWN = 3046
    NOTHING_TO_CONFIRM = 3047
    # 2300: the FHIR facade (docs/fhir.md): its bearer tokens and its search requests
    TOKEN_INVALID = 2301
    TOKEN_EXPIRED = 2302
    FHIR_TYPE_UNKNOWN = 2303
    FHIR_SEARCH_INVALID = 2304
    # 920-929: node durability, backups and upgrades (never on the ledger, except RULES_NOT_ACTIVE)
    STORE_ROLLED_BACK = 920
    HEAD_RECORD_MISMATCH = 921
    STORE_SCHEMA_UNSUPPORTED = 922
    BACKUP_INVALID = 923
    RULES_NOT_ACTIVE = 924
    UPGRADE_REQUIRED = 925
    # 930-939: operating a node: limits, connections, client certificates, key passphrases (never on the ledger)
    RATE_LIMITED = 930
    TOO_MANY_CONNECTIONS = 931
    CLIENT_CERT_REQUIRED = 932
    CLIENT_CERT_NOT_REGISTERED = 933
    WRONG_PASSPHRASE = 934


class LedgerError(Exception):
    """Base of every CareLedger refusal: a stable ``code`` and a human ``message`` (never hashed)."""

    default_code: Code = Code.INVALID_STATE

    def __init__(self, message: str, code: Code | None = None) -> None:
        super().__init__(message)
        self.code: Code = code if code is not None else self.default_code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name} ({int(self.code)}): {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"code": int(self.code), "name": self.code.name, "message": self.message}


class InvalidTx(LedgerError):
    """The transaction is invalid: it is refused at admission and never enters a block."""

    default_code = Code.INVALID_PAYLOAD


class EncodingError(InvalidTx):
    default_code = Code.MALFORMED_ENCODING


class AuthError(InvalidTx):
    default_code = Code.BAD_SIGNATURE


class NonceError(InvalidTx):
    default_code = Code.NONCE_REPLAYED


class TxFailed(LedgerError):
    """A well-formed transaction refused by its contract: included with a non-zero receipt."""

    default_code = Code.INVALID_STATE


class GenesisError(LedgerError):
    default_code = Code.INVALID_GENESIS


class StoreCorrupted(LedgerError):
    default_code = Code.STORE_CORRUPTED


class NotFound(LedgerError):
    default_code = Code.NOT_FOUND
