"""CBV 2.0 vocabularies, EU FMD pack states and the verification reason codes of the supply contract.

Business steps and dispositions come in three spellings (GS1 CBV 2.0): the bare JSON-LD word
(``shipping``), the Web URI (``https://ref.gs1.org/cbv/BizStep-shipping``) and the EPCIS 1.x URN
(``urn:epcglobal:cbv:bizstep:shipping``). :func:`normalise_biz_step` and :func:`normalise_disposition`
map all three to the bare word and refuse any other CBV-looking value; a value that is an absolute
URI outside the CBV namespaces is a user extension and is returned unchanged.

Sources: ``JSON-Schema/schemas/bizStep-JSON-Schema.json`` and ``disposition-JSON-Schema.json`` of
gs1/EPCIS @ 2b888bef (41 and 33 terms), NMVS pack states and alert codes (securmed.org.uk), GS1
Lightweight Messaging Standard for verification (DSCSA VRS) failure reasons.
"""

from __future__ import annotations

import re

BIZ_STEPS = frozenset({
    "accepting", "arriving", "assembling", "collecting", "commissioning", "consigning", "creating_class_instance",
    "cycle_counting", "decommissioning", "departing", "destroying", "disassembling", "dispensing", "encoding",
    "entering_exiting", "holding", "inspecting", "installing", "killing", "loading", "other", "packing", "picking",
    "receiving", "removing", "repackaging", "repairing", "replacing", "reserving", "retail_selling", "shipping",
    "staging_outbound", "stock_taking", "stocking", "storing", "transporting", "unloading", "unpacking",
    "void_shipping", "sensor_reporting", "sampling",
})
DISPOSITIONS = frozenset({
    "active", "container_closed", "damaged", "destroyed", "dispensed", "disposed", "encoded", "expired",
    "in_progress", "in_transit", "inactive", "no_pedigree_match", "non_sellable_other", "partially_dispensed",
    "recalled", "reserved", "retail_sold", "returned", "sellable_accessible", "sellable_not_accessible", "stolen",
    "unknown", "available", "completeness_verified", "completeness_inferred", "conformant", "container_open",
    "mismatch_instance", "mismatch_class", "mismatch_quantity", "needs_replacement", "non_conformant", "unavailable",
})
BIZ_TRANSACTION_TYPES = frozenset({"bol", "cert", "desadv", "inv", "pedigree", "po", "poc", "prodorder", "recadv",
                                   "rma", "testprd", "testres", "upevt"})
SOURCE_DEST_TYPES = frozenset({"owning_party", "possessing_party", "location"})

_WEB = {"bizStep": "https://ref.gs1.org/cbv/BizStep-", "disposition": "https://ref.gs1.org/cbv/Disp-",
        "bizTransaction": "https://ref.gs1.org/cbv/BTT-", "sourceDest": "https://ref.gs1.org/cbv/SDT-"}
_URN = {"bizStep": "urn:epcglobal:cbv:bizstep:", "disposition": "urn:epcglobal:cbv:disp:",
        "bizTransaction": "urn:epcglobal:cbv:btt:", "sourceDest": "urn:epcglobal:cbv:sdt:"}
_VOCAB = {"bizStep": BIZ_STEPS, "disposition": DISPOSITIONS, "bizTransaction": BIZ_TRANSACTION_TYPES,
          "sourceDest": SOURCE_DEST_TYPES}
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_CBV_HOSTS = ("https://ref.gs1.org/cbv/", "http://ref.gs1.org/cbv/", "https://gs1.org/voc/", "urn:epcglobal:cbv:")


class VocabularyError(ValueError):
    """A value that claims to be a CBV term (bare word or CBV URI) but is not one."""


def normalise_term(kind: str, value: str) -> str:
    """The bare CBV word for ``value`` of vocabulary ``kind``; a non-CBV absolute URI is returned unchanged.

    Raises :class:`VocabularyError` for a bare word outside the vocabulary, a CBV URI naming an unknown
    term, or a value that is neither a word nor an absolute URI.
    """
    vocab = _VOCAB[kind]
    if value in vocab:
        return value
    for prefix in (_WEB[kind], _URN[kind]):
        if value.startswith(prefix):
            word = value[len(prefix):]
            if word in vocab:
                return word
            raise VocabularyError(f"{kind} {value!r} names {word!r}, which is not a CBV 2.0 {kind}")
    if value.startswith(_CBV_HOSTS):
        raise VocabularyError(f"{kind} {value!r} is in a CBV namespace but is not a CBV 2.0 {kind}")
    if ":" in value and _ABSOLUTE_URI.match(value):
        return value  # a user vocabulary extension (any non-CBV absolute URI), allowed by EPCIS
    raise VocabularyError(f"{kind} {value!r} is not a CBV 2.0 term nor an absolute URI")


def normalise_biz_step(value: str) -> str:
    return normalise_term("bizStep", value)


def normalise_disposition(value: str) -> str:
    return normalise_term("disposition", value)


# --- EU FMD / NMVS pack states ------------------------------------------------------------------------

ACTIVE = "active"
DECOMMISSION_STATES = ("supplied", "destroyed", "stolen", "exported", "sample", "free_sample", "locked",
                       "checked_out")
PACK_STATES = (ACTIVE, *DECOMMISSION_STATES)
TERMINAL_STATES = frozenset({"destroyed", "stolen"})
REVERSIBLE_STATES = frozenset({"supplied", "exported", "sample", "free_sample", "locked", "checked_out"})
UNDO_ANYTIME = frozenset({"locked"})
UNDO_WINDOW_MS = 10 * 24 * 3600 * 1000  # EU 2016/161 Art 13(b): 10 days
DISPENSER_ORG_ROLES = frozenset({"pharmacy", "hospital"})
STATE_DISPOSITION = {"active": "active", "supplied": "dispensed", "destroyed": "destroyed", "stolen": "stolen",
                     "exported": "inactive", "sample": "inactive", "free_sample": "inactive", "locked": "inactive",
                     "checked_out": "inactive"}
STATE_BIZ_STEP = {"supplied": "dispensing", "destroyed": "destroying", "stolen": "decommissioning",
                  "exported": "decommissioning", "sample": "sampling", "free_sample": "decommissioning",
                  "locked": "holding", "checked_out": "decommissioning"}

# --- verification reasons: ours, with the EU FMD (NMVS) and DSCSA (VRS / LMS 1.3) equivalents ---------

# reason -> (NMVS code, DSCSA verificationFailureReason, DSCSA additionalInfo)
REASONS: dict[str, tuple[str | None, str, str | None]] = {
    "UNKNOWN_PRODUCT": ("NMVS_NC_PC_01", "No_match_GTIN_Serial", None),
    "UNKNOWN_SERIAL": ("NMVS_NC_PC_02", "No_match_GTIN_Serial", None),
    "LOT_MISMATCH": ("NMVS_FE_LOT_13", "No_match_GTIN_Serial_Lot", None),
    "EXPIRY_MISMATCH": ("NMVS_FE_LOT_12", "No_match_GTIN_Serial_Expiry", None),
    "EXPIRED": (None, "Not_for_re-distribution", "Expired"),
    "RECALLED": (None, "Not_for_re-distribution", "Recalled"),
    "WITHDRAWN": (None, "Not_for_re-distribution", "Recalled"),
    "ALREADY_DECOMMISSIONED": ("NMVS_NC_PCK_22", "Not_for_re-distribution", None),
    "STOLEN": ("NMVS_NC_PCK_22", "Not_for_re-distribution", "Suspect"),
    "DESTROYED": ("NMVS_NC_PCK_22", "Not_for_re-distribution", "Suspect"),
    "LOCKED": ("NMVS_NC_PCK_22", "Not_for_re-distribution", None),
}
STATE_REASON = {"supplied": "ALREADY_DECOMMISSIONED", "exported": "ALREADY_DECOMMISSIONED",
                "sample": "ALREADY_DECOMMISSIONED", "free_sample": "ALREADY_DECOMMISSIONED",
                "checked_out": "ALREADY_DECOMMISSIONED", "stolen": "STOLEN", "destroyed": "DESTROYED",
                "locked": "LOCKED"}


def dscsa_failure(reasons: list[str]) -> dict[str, str] | None:
    """The DSCSA VRS ``data`` fields for a failed verification (None when verified)."""
    if not reasons:
        return None
    if "LOT_MISMATCH" in reasons and "EXPIRY_MISMATCH" in reasons:
        return {"verificationFailureReason": "No_match_GTIN_Serial_Lot_Expiry"}
    first = REASONS[reasons[0]]
    out = {"verificationFailureReason": first[1]}
    info = next((REASONS[r][2] for r in reasons if REASONS[r][2]), None)
    if info:
        out["additionalInfo"] = info
    return out
