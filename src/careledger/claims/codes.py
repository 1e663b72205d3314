"""The codes adjudication speaks: X12 group codes, the CARC and RARC it uses, outcomes and fraud flags.

X12 asserts copyright on its code lists, so only the handful of codes CareLedger emits are named
here, each with its number and a short description of our own (not X12's wording). Sources: the
CMS-contractor and X12 pages cited in the claims reference; entries marked [K] were not checked
against the current X12 list and must be before release.

Claim adjustment group codes (835 CAS01): ``CO`` contractual obligation (the provider writes it off),
``PR`` patient responsibility, ``OA`` other adjustment, ``PI`` payer-initiated reduction.

The fraud and integrity flags (never CARC) are defined with the contract's state, in
:mod:`careledger.contracts.claims.layout` (``FLAG_*``).
"""

from __future__ import annotations

from typing import Final, Literal

GROUPS: Final = ("CO", "OA", "PI", "PR")
Group = Literal["CO", "OA", "PI", "PR"]

# CARC (claim adjustment reason codes) CareLedger emits, with our own short description.
CARC_DEDUCTIBLE: Final = "1"
CARC_COINSURANCE: Final = "2"
CARC_COPAY: Final = "3"
CARC_LACKS_INFORMATION: Final = "16"      # lacks information / billing error; always with a RARC
CARC_DUPLICATE: Final = "18"              # exact duplicate claim or service
CARC_OTHER_PAYER_PRIMARY: Final = "22"    # another payer is primary (coordination of benefits)
CARC_PRIOR_PAYER: Final = "23"            # the prior payer's adjudication (coordination of benefits)
CARC_BEFORE_COVERAGE: Final = "26"        # incurred before coverage began
CARC_AFTER_COVERAGE: Final = "27"         # incurred after coverage ended
CARC_TIMELY_FILING: Final = "29"          # filed after the plan's time limit
CARC_NOT_INSURED: Final = "31"            # not identified as our insured
CARC_FEE_SCHEDULE: Final = "45"           # charge above the allowed amount
CARC_NON_COVERED: Final = "96"            # non-covered charge
CARC_BENEFIT_MAXIMUM: Final = "119"       # benefit maximum for the period reached
CARC_PENDING: Final = "133"               # disposition pending further review (OA only) [K]
CARC_UNITS: Final = "151"                 # units or frequency not supported (MUE)
CARC_NO_AUTHORIZATION: Final = "197"      # precertification/authorization absent
CARC_NOT_IN_PLAN: Final = "204"           # not covered under the patient's benefit plan
CARC_NCCI: Final = "236"                  # procedure pair not compatible on the same day (NCCI PTP)
CARC_PROVIDER_NOT_ELIGIBLE: Final = "B7"  # provider not eligible to be paid for this service on this date [K]

CARC: Final[dict[str, str]] = {
    CARC_DEDUCTIBLE: "Deductible amount",
    CARC_COINSURANCE: "Coinsurance amount",
    CARC_COPAY: "Co-payment amount",
    CARC_LACKS_INFORMATION: "Claim or service lacks information or has a billing error (see the remark)",
    CARC_DUPLICATE: "Exact duplicate of a claim or service already adjudicated",
    CARC_OTHER_PAYER_PRIMARY: "Another payer may cover this care first (coordination of benefits)",
    CARC_PRIOR_PAYER: "Impact of the prior payer's adjudication",
    CARC_BEFORE_COVERAGE: "Service before the coverage began",
    CARC_AFTER_COVERAGE: "Service after the coverage ended",
    CARC_TIMELY_FILING: "Filed after the plan's time limit",
    CARC_NOT_INSURED: "Patient not identified as insured under this coverage",
    CARC_FEE_SCHEDULE: "Charge exceeds the allowed amount",
    CARC_NON_COVERED: "Non-covered charge",
    CARC_BENEFIT_MAXIMUM: "Benefit maximum for the period reached",
    CARC_PENDING: "Disposition pending further review",
    CARC_UNITS: "Units of service exceed what the payer supports for this service",
    CARC_NO_AUTHORIZATION: "Authorization absent",
    CARC_NOT_IN_PLAN: "Service not covered under the patient's benefit plan",
    CARC_NCCI: "Procedure pair not payable together on the same day (NCCI procedure-to-procedure edit)",
    CARC_PROVIDER_NOT_ELIGIBLE: "Provider not eligible to be paid for this service on this date",
}

# RARC (remittance advice remark codes) CareLedger emits.
RARC_NO_MEDICAL_RECORD: Final = "M127"   # missing patient medical record for this service (phantom billing)
RARC_MISSING_CHARGE: Final = "M79"       # missing/invalid charge [K]
RARC_TOTAL_CHARGES: Final = "M54"        # missing/invalid total charges [K]
RARC_UNITS_MAXIMUM: Final = "N362"       # units of service exceed the acceptable maximum [K]

RARC: Final[dict[str, str]] = {
    RARC_NO_MEDICAL_RECORD: "No recorded encounter supports this service",
    RARC_MISSING_CHARGE: "Missing or invalid charge",
    RARC_TOTAL_CHARGES: "Total charge does not equal the sum of the line charges",
    RARC_UNITS_MAXIMUM: "Units of service exceed the acceptable maximum for the date",
}

CARC_SYSTEM: Final = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC_SYSTEM: Final = "https://x12.org/codes/remittance-advice-remark-codes"
GROUP_SYSTEM: Final = "https://x12.org/codes/claim-adjustment-group-codes"

ClaimOutcome = Literal["approved", "partial", "denied", "pended"]
LineOutcome = Literal["approved", "denied", "pended"]
CLAIM_OUTCOMES: Final = ("approved", "partial", "denied", "pended")
LINE_OUTCOMES: Final = ("approved", "denied", "pended")

# NCCI-associated modifiers that may bypass a procedure-to-procedure edit with modifier indicator 1.
NCCI_MODIFIERS: Final = frozenset({
    "E1", "E2", "E3", "E4", "FA", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9",
    "TA", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "LT", "RT", "LC", "LD", "RC", "LM", "RI",
    "24", "25", "57", "58", "78", "79", "27", "59", "91", "XE", "XS", "XP", "XU",
})


def adjustment_code(group: str, carc: str) -> str:
    """The ledger's spelling of an adjustment reason: ``<group>-<CARC>`` (``CO-16``, ``PR-1``)."""
    return f"{group}-{carc}"
