"""careledger.contracts.supply.gs1: every GS1 vector in tests/data/gs1/standards-test-vectors.json, the
worked examples of the GS1 General Specifications (§1.10 and §2 of our standards notes), round-trip
properties and one negative test per refusal."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.contracts.supply.gs1 import (
    CSET82,
    GS,
    SGLN,
    SGTIN,
    SSCC,
    GS1Error,
    ProductIdentifier,
    check_digit,
    digital_link_to_element_string,
    digital_link_to_sgtin_urn,
    element_string_to_digital_link,
    escape_epc_component,
    gtin_to_sgtin_urn,
    has_valid_check_digit,
    parse_digital_link,
    parse_element_string,
    parse_gln,
    parse_gtin,
    parse_sgln_urn,
    parse_sgtin_urn,
    parse_sscc,
    parse_sscc_urn,
    resolve_century,
    sgtin_urn_to_digital_link,
    sgtin_urn_to_gtin,
    unescape_epc_component,
    validate_yymmd0,
    yymmd0_from_epoch_days,
    yymmd0_from_iso,
    yymmd0_to_epoch_days,
    yymmd0_to_iso,
)
from careledger.core.errors import Code, LedgerError

VECTORS_FILE = Path(__file__).resolve().parents[2] / "data" / "gs1" / "standards-test-vectors.json"
V: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))

GS1_SECTIONS = {
    "gs1_check_digit",
    "sgtin_urn_to_gtin14",
    "sgtin_urn_to_digital_link",
    "sgln",
    "gs1_element_strings",
    "gs1_yymmd0_dates",
}
NOT_GS1 = {"_about", "hipaa_safe_harbor", "k_anonymity_example"}
DERANDOMIZED = settings(derandomize=True, max_examples=150, deadline=None)


def _refused(code: Code, fn: Callable[..., object], *args: Any, **kwargs: Any) -> GS1Error:
    with pytest.raises(GS1Error) as info:
        fn(*args, **kwargs)
    assert info.value.code is code, str(info.value)
    assert isinstance(info.value, LedgerError)
    assert info.value.message
    return info.value


def test_every_gs1_vector_section_is_used() -> None:
    assert set(V) - NOT_GS1 == GS1_SECTIONS


GS1_CODES = {c for c in Code if 3001 <= c <= 3009}  # identifier errors; the supply contract owns the rest


def test_error_codes_in_the_supply_range() -> None:
    assert {c.name for c in GS1_CODES} == {
        "BAD_CHECK_DIGIT",
        "MALFORMED_IDENTIFIER",
        "MALFORMED_URN",
        "MALFORMED_DIGITAL_LINK",
        "MALFORMED_ELEMENT_STRING",
        "BAD_DATE",
        "ILLEGAL_CHARACTER",
        "FIELD_TOO_LONG",
        "UNSUPPORTED_AI",
    }
    assert int(Code.BAD_CHECK_DIGIT) == 3001
    assert int(Code.MALFORMED_IDENTIFIER) == 3002
    assert GS1Error("x").code is Code.MALFORMED_IDENTIFIER
    assert GS1Error("x", Code.BAD_DATE).to_dict() == {"code": 3006, "name": "BAD_DATE", "message": "x"}


# ------------------------------------------------------------------------------------- check digit


def _parse_key(digits: str) -> str:
    return parse_sscc(digits) if len(digits) == 18 else parse_gtin(digits)


@pytest.mark.parametrize("digits", V["gs1_check_digit"]["valid"])
def test_check_digit_valid_vectors(digits: str) -> None:
    assert has_valid_check_digit(digits)
    assert check_digit(digits[:-1]) == int(digits[-1])
    assert _parse_key(digits) == (digits if len(digits) == 18 else digits.zfill(14))


@pytest.mark.parametrize("digits", V["gs1_check_digit"]["invalid"])
def test_check_digit_invalid_vectors(digits: str) -> None:
    assert not has_valid_check_digit(digits)
    err = _refused(Code.BAD_CHECK_DIGIT, _parse_key, digits)
    assert f"expected {check_digit(digits[:-1])}" in err.message


@pytest.mark.parametrize("text", V["gs1_check_digit"]["non_digit_invalid"])
def test_check_digit_non_digit_vectors(text: str) -> None:
    assert not has_valid_check_digit(text)
    _refused(Code.MALFORMED_IDENTIFIER, parse_sscc, text)
    _refused(Code.MALFORMED_IDENTIFIER, check_digit, text)


def test_gtin_normalisation_and_lengths() -> None:
    assert parse_gtin("02345673") == "00000002345673"  # GTIN-8
    assert parse_gtin("416000336108") == "00416000336108"  # GTIN-12 (UPC-A)
    assert parse_gtin("1234567890128") == "01234567890128"  # GTIN-13
    assert parse_gtin("12345678901231") == "12345678901231"  # GTIN-14
    assert parse_gln("1234567890128") == "1234567890128"
    for bad in ("1234567", "123456789", "123456789012345", "", "\uff11" * 13):
        _refused(Code.MALFORMED_IDENTIFIER, parse_gtin, bad)
    _refused(Code.MALFORMED_IDENTIFIER, parse_gln, "02345673")
    _refused(Code.BAD_CHECK_DIGIT, parse_gln, "1234567890123")
    assert not has_valid_check_digit("5") and not has_valid_check_digit("")


# standards.md §2.2: GTINs with valid check digits, and the one invalid example.
STANDARDS_GTINS = [
    "09506000134352",
    "09521234543213",
    "10614141073464",
    "00300010123455",
    "10300010123452",
    "05099151015051",
    "02012345678903",
    "4006381333931",
    "036000291452",
    "00300710155237",
]


@pytest.mark.parametrize("gtin", STANDARDS_GTINS)
def test_standards_gtin_examples(gtin: str) -> None:
    assert parse_gtin(gtin) == gtin.zfill(14)


def test_standards_invalid_gtin_example() -> None:
    err = _refused(Code.BAD_CHECK_DIGIT, parse_gtin, "00300010123458")
    assert "expected 5" in err.message


def test_ndc_to_gtin_rule() -> None:
    # §2.3: GTIN-14 = indicator 0 + "03" + NDC-10 + check digit; GCP = "03" + labeler code.
    body = "0" + "03" + "0001012345"
    assert body + str(check_digit(body)) == "00300010123455"
    sgtin = SGTIN.from_gtin("00300010123455", "11", company_prefix_length=6)
    assert (sgtin.company_prefix, sgtin.item_ref) == ("030001", "0012345")  # urn:epc:id:sgtin:030001.0012345.*
    assert SGTIN.from_gtin("10300010123452", "1", 6).item_ref == "1012345"


# ----------------------------------------------------------------------------------------- SGTIN


@pytest.mark.parametrize(("urn", "gtin", "serial", "source"), V["sgtin_urn_to_gtin14"]["cases"])
def test_sgtin_urn_to_gtin_vectors(urn: str, gtin: str, serial: str, source: str) -> None:
    sgtin = parse_sgtin_urn(urn)
    assert sgtin.gtin == gtin, source
    assert sgtin.serial == serial
    assert sgtin_urn_to_gtin(urn) == (gtin, serial)
    assert sgtin.urn == urn
    assert gtin_to_sgtin_urn(gtin, serial, sgtin.company_prefix_length) == urn
    assert sgtin.product_identifier() == ProductIdentifier(gtin, serial=serial)


@pytest.mark.parametrize(("urn", "link"), V["sgtin_urn_to_digital_link"]["cases"])
def test_sgtin_urn_to_digital_link_vectors(urn: str, link: str) -> None:
    assert sgtin_urn_to_digital_link(urn) == link
    assert parse_sgtin_urn(urn).digital_link() == link
    assert digital_link_to_sgtin_urn(link, parse_sgtin_urn(urn).company_prefix_length) == urn


@pytest.mark.parametrize(("link", "gcp_length", "urn"), V["sgtin_urn_to_digital_link"]["reverse_needs_gcp_length"])
def test_digital_link_to_sgtin_needs_gcp_length_vectors(link: str, gcp_length: int, urn: str) -> None:
    assert digital_link_to_sgtin_urn(link, gcp_length) == urn
    assert parse_digital_link(link).sgtin(gcp_length).urn == urn
    # The same link with another prefix length is another (equally well-formed) URN: the length must be known.
    other = digital_link_to_sgtin_urn(link, gcp_length + 1)
    assert other != urn and parse_sgtin_urn(other).gtin == parse_sgtin_urn(urn).gtin
    assert sgtin_urn_to_digital_link(urn) == link


def test_sgtin_examples_from_standards() -> None:
    assert parse_sgtin_urn("urn:epc:id:sgtin:0614141.107346.2017").gtin == "10614141073464"
    # Class-level pairs of §1.10 (LGTIN, idpat): the GCP split of the GTIN matches the URN components.
    lgtin = parse_digital_link("https://id.gs1.org/01/04012345123456/10/998877")
    assert (lgtin.gtin, lgtin.lot, lgtin.serial) == ("04012345123456", "998877", None)
    split = SGTIN.from_gtin(lgtin.gtin, "1", 7)
    assert (split.company_prefix, split.item_ref) == ("4012345", "012345")
    pattern = SGTIN.from_gtin(parse_digital_link("https://id.gs1.org/01/88853849384934").gtin, "1", 7)
    assert (pattern.company_prefix, pattern.item_ref) == ("8853849", "838493")
    ibuprofen = SGTIN.from_gtin("10614141073464", "2017", 7)
    assert ibuprofen.urn == "urn:epc:id:sgtin:0614141.107346.2017"
    assert ibuprofen.digital_link() == "https://id.gs1.org/01/10614141073464/21/2017"


def test_sgtin_serial_escaping() -> None:
    # §1.10: " % & / < > ? are percent-encoded in the URN; other set-82 punctuation stays raw.
    sgtin = SGTIN.from_gtin("10614141073464", 'a"%&/<>?b', 7)
    assert sgtin.urn == "urn:epc:id:sgtin:0614141.107346.a%22%25%26%2F%3C%3E%3Fb"
    assert parse_sgtin_urn(sgtin.urn) == sgtin
    assert escape_epc_component("!'()*+,-.:;=_") == "!'()*+,-.:;=_"
    assert unescape_epc_component("x%2fy%41") == "x/yA"  # lower-case hex and needless escapes decode
    dotted = parse_sgtin_urn("urn:epc:id:sgtin:0614141.107346.1.2.3")
    assert dotted.serial == "1.2.3"
    assert parse_sgtin_urn("URN:EPC:ID:SGTIN:0614141.107346.9").serial == "9"
    assert sgtin.digital_link() == "https://id.gs1.org/01/10614141073464/21/a%22%25%26%2F%3C%3E%3Fb"


# ------------------------------------------------------------------------------------ SGLN / SSCC


def test_sgln_vectors() -> None:
    (urn, link), (link_with_note, urn2) = V["sgln"]["cases"]
    sgln = parse_sgln_urn(urn)
    assert sgln.digital_link() == link
    assert SGLN.from_digital_link(link, len(sgln.company_prefix)) == sgln
    assert sgln.urn == urn and sgln.gln == "7857834384782"
    # Second vector: "<link> (gcp 6)". Its GLN 1234567890123 fails the GS1 check digit (openepcis does not
    # check; 1234567890128 is the valid lint_csum vector), so the link is refused while the URN maps to the
    # correctly check-digited link, which maps back to the vector's URN.
    link2, note = link_with_note.split(" (gcp ")
    gcp_length = int(note.rstrip(")"))
    _refused(Code.BAD_CHECK_DIGIT, SGLN.from_digital_link, link2, gcp_length)
    fixed = parse_sgln_urn(urn2).digital_link()
    assert fixed == "https://id.gs1.org/414/1234567890128/254/1234"
    assert SGLN.from_digital_link(fixed, gcp_length).urn == urn2


def test_sgln_extension_zero_means_none() -> None:
    sgln = parse_sgln_urn("urn:epc:id:sgln:437473647364..0")  # GCP of 12 digits: empty location reference
    assert sgln.location_ref == "" and sgln.extension == "0"
    assert sgln.digital_link() == f"https://id.gs1.org/414/{sgln.gln}"  # no /254/0
    assert SGLN.from_digital_link(sgln.digital_link(), 12) == sgln
    assert SGLN.from_digital_link(f"https://id.gs1.org/414/{sgln.gln}/254/0", 12) == sgln
    assert SGLN.from_gln("7857834384782", 6, extension="a/b").urn == "urn:epc:id:sgln:785783.438478.a%2Fb"
    assert SGLN.from_gln("7857834384782", 6).digital_link("https://example.com/") == (
        "https://example.com/414/7857834384782"
    )


def test_sscc_example() -> None:
    sscc = parse_sscc_urn("urn:epc:id:sscc:030001.41234567890")  # GS1 US example
    assert sscc.sscc == "403000112345678901"
    assert sscc.urn == "urn:epc:id:sscc:030001.41234567890"
    assert SSCC.from_sscc(sscc.sscc, 6) == sscc
    assert sscc.digital_link() == "https://id.gs1.org/00/403000112345678901"
    assert SSCC.from_digital_link(sscc.digital_link(), 6) == sscc
    assert parse_sscc("123456789012345675") == "123456789012345675"


# ------------------------------------------------------------------------------------ Digital Link


def test_digital_link_forms() -> None:
    # The brief's shape: serial in the path, expiry and lot in the query.
    pid = parse_digital_link("https://id.gs1.org/01/09506000134352/21/ABC%2F1?17=261231&10=L1x")
    assert pid == ProductIdentifier("09506000134352", serial="ABC/1", lot="L1x", expiry="261231")
    assert pid.digital_link(lot_in_query=True) == "https://id.gs1.org/01/09506000134352/21/ABC%2F1?17=261231&10=L1x"
    # DSCSA product identifier (§1.10): lot and serial in the path, expiry in the query.
    dscsa = "https://id.gs1.org/01/00300010123455/10/LOT1/21/SER1?17=270131"
    assert parse_digital_link(dscsa).digital_link() == dscsa
    # Other domains, a path prefix, convenience alphas, http, a non-GS1 attribute and a fragment.
    other = "http://Example.COM:8443/dl/v1/gtin/09521234543213/lot/A1/ser/S%26P?exp=261231&linkType=all#x"
    assert parse_digital_link(other) == ProductIdentifier("09521234543213", "S&P", "A1", "261231")
    assert parse_digital_link("https://example.com/01/09521234543213?17=261231").expiry == "261231"  # bwipp
    # A path prefix that itself looks like a key: the primary key is the last one followed by whole pairs.
    assert parse_digital_link("https://x.org/00/ab/01/09506000134352/21/01").serial == "01"
    assert parse_digital_link("https://id.gs1.org/01/09506000134352/21/a!'()*+,;=:&b").serial == "a!'()*+,;=:&b"
    assert ProductIdentifier("09506000134352", serial="a").digital_link("https://example.com/pre/") == (
        "https://example.com/pre/01/09506000134352/21/a"
    )


def test_digital_link_element_string_conversions() -> None:
    link = "https://id.gs1.org/01/05099151015051/10/78241PC/21/1HXNA4G4VM?17=260530"
    text = "01050991510150511726053010" + "78241PC" + GS + "211HXNA4G4VM"
    assert digital_link_to_element_string(link) == text
    assert digital_link_to_element_string(link, symbology_identifier=True) == "]d2" + text
    assert element_string_to_digital_link(text) == link
    assert element_string_to_digital_link("]d2" + text, "https://example.org") == link.replace(
        "https://id.gs1.org", "https://example.org"
    )


# ---------------------------------------------------------------------------------- element strings


@pytest.mark.parametrize(("text", "ais"), V["gs1_element_strings"]["cases"])
def test_element_string_vectors(text: str, ais: dict[str, str]) -> None:
    expected = ProductIdentifier(ais["01"], serial=ais["21"], lot=ais["10"], expiry=ais["17"])
    for variant in (text, "]d2" + text, "]d2" + text.lstrip(GS)):
        assert parse_element_string(variant) == expected
    assert parse_element_string(expected.element_string()) == expected
    assert parse_element_string(expected.bracketed()) == expected
    assert expected.bracketed() == f"(01){ais['01']}(17){ais['17']}(10){ais['10']}(21){ais['21']}"
    assert parse_element_string(f"(01){ais['01']}(10){ais['10']}(17){ais['17']}(21){ais['21']}") == expected
    assert parse_digital_link(expected.digital_link()) == expected


def test_element_string_details() -> None:
    pid = ProductIdentifier("9506000134352", serial="S(1)", lot="L(2")
    assert pid.gtin == "09506000134352"
    assert pid.bracketed() == "(01)09506000134352(10)L\\(2(21)S\\(1)"
    assert parse_element_string(pid.bracketed()) == pid
    assert pid.element_string() == "010950600013435210L(2" + GS + "21S(1)"
    assert ProductIdentifier("09506000134352", lot="L").element_string() == "010950600013435210L"  # no trailing GS
    assert parse_element_string("010950600013435210L" + GS) == ProductIdentifier("09506000134352", lot="L")
    assert parse_element_string("]Q30109506000134352" + GS + "17261231") == ProductIdentifier(
        "09506000134352", expiry="261231"
    )
    assert parse_element_string("0109506000134352" + "0109506000134352") == ProductIdentifier("09506000134352")


# ------------------------------------------------------------------------------------------- dates


@pytest.mark.parametrize("text", V["gs1_yymmd0_dates"]["valid"])
def test_date_valid_vectors(text: str) -> None:
    assert validate_yymmd0(text) == text
    iso = yymmd0_to_iso(text, reference_year=2026)
    assert iso.startswith("20" + text[:2])
    assert ProductIdentifier("09506000134352", expiry=text).expiry_iso(reference_year=2026) == iso


@pytest.mark.parametrize("text", V["gs1_yymmd0_dates"]["invalid"])
def test_date_invalid_vectors(text: str) -> None:
    _refused(Code.BAD_DATE, validate_yymmd0, text)
    _refused(Code.BAD_DATE, ProductIdentifier, "09506000134352", expiry=text)


def test_dates_day_zero_century_and_epoch_days() -> None:
    assert yymmd0_to_iso("200600", reference_year=2026) == "2020-06-30"  # day 00: end of month
    assert yymmd0_to_iso("240200", reference_year=2026) == "2024-02-29"
    assert yymmd0_to_epoch_days("000101", reference_year=2026) == 10957
    assert yymmd0_to_epoch_days("700101", reference_year=2026) == 36525  # 2070
    assert yymmd0_to_epoch_days("700101", reference_year=1990) == 0
    pid = ProductIdentifier("05099151015051", expiry="260530")
    assert pid.expiry_epoch_days(reference_year=2026) == (dt.date(2026, 5, 30) - dt.date(1970, 1, 1)).days
    assert ProductIdentifier("05099151015051").expiry_iso(reference_year=2026) is None
    assert ProductIdentifier("05099151015051").expiry_epoch_days(reference_year=2026) is None
    # GS1 sliding window: 51+ years ahead → previous century; 50+ years behind → next century.
    assert resolve_century(76, reference_year=2026) == 2076
    assert resolve_century(77, reference_year=2026) == 1977
    assert resolve_century(0, reference_year=2026) == 2000
    assert resolve_century(30, reference_year=2080) == 2130
    assert resolve_century(31, reference_year=2080) == 2031
    assert resolve_century(0, reference_year=1999) == 2000
    # 000229 passes the reference-free check (2000 was a leap year) but 2100-02-29 does not exist.
    assert yymmd0_to_iso("000229", reference_year=2026) == "2000-02-29"
    _refused(Code.BAD_DATE, yymmd0_to_iso, "000229", reference_year=2060)
    assert yymmd0_from_iso("2026-05-30") == "260530"
    assert yymmd0_from_epoch_days(0) == "700101"


# ---------------------------------------------------------------------------------------- negatives

LONG = "A" * 21
NEGATIVE: list[tuple[str, Code, Callable[..., object], tuple[Any, ...]]] = [
    ("gtin check digit", Code.BAD_CHECK_DIGIT, parse_gtin, ("12345678901232",)),
    ("element string gtin check digit", Code.BAD_CHECK_DIGIT, parse_element_string, ("0112345678901232",)),
    (
        "digital link gtin check digit",
        Code.BAD_CHECK_DIGIT,
        parse_digital_link,
        ("https://id.gs1.org/01/12345678901232",),
    ),
    ("sscc check digit", Code.BAD_CHECK_DIGIT, SSCC.from_sscc, ("123456789012345670", 6)),
    ("gtin letters", Code.MALFORMED_IDENTIFIER, parse_gtin, ("1234567890123A",)),
    ("gtin whitespace", Code.MALFORMED_IDENTIFIER, parse_gtin, (" 1234567890128",)),
    ("gtin length", Code.MALFORMED_IDENTIFIER, parse_gtin, ("123456789",)),
    ("gcp length too short", Code.MALFORMED_IDENTIFIER, SGTIN.from_gtin, ("10614141073464", "1", 5)),
    ("gcp length too long", Code.MALFORMED_IDENTIFIER, SGTIN.from_gtin, ("10614141073464", "1", 13)),
    ("gcp length bool", Code.MALFORMED_IDENTIFIER, SGTIN.from_gtin, ("10614141073464", "1", True)),
    (
        "no serial, no sgtin",
        Code.MALFORMED_IDENTIFIER,
        digital_link_to_sgtin_urn,
        ("https://id.gs1.org/01/09506000134352", 7),
    ),
    ("empty serial", Code.MALFORMED_IDENTIFIER, ProductIdentifier, ("09506000134352", "")),
    ("bad sgtin split", Code.MALFORMED_IDENTIFIER, SGTIN, ("0614141", "10734", "1")),
    ("urn scheme", Code.MALFORMED_URN, parse_sgtin_urn, ("urn:epc:id:sscc:030001.41234567890",)),
    ("urn not a string", Code.MALFORMED_URN, parse_sgtin_urn, (None,)),
    ("urn components", Code.MALFORMED_URN, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141107346",)),
    ("urn digit count", Code.MALFORMED_URN, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.10734.1",)),
    ("urn short gcp", Code.MALFORMED_URN, parse_sgtin_urn, ("urn:epc:id:sgtin:06141.41107346.1",)),
    ("urn letters", Code.MALFORMED_URN, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.10734X.1",)),
    ("urn empty serial", Code.MALFORMED_URN, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.107346.",)),
    ("urn bad escape", Code.MALFORMED_URN, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.107346.a%2",)),
    ("urn bad hex", Code.MALFORMED_URN, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.107346.a%zz",)),
    ("urn raw slash", Code.ILLEGAL_CHARACTER, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.107346.a/b",)),
    ("urn raw space", Code.ILLEGAL_CHARACTER, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.107346.a b",)),
    ("urn escape outside set 82", Code.ILLEGAL_CHARACTER, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.107346.%23",)),
    ("urn serial too long", Code.FIELD_TOO_LONG, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.107346." + LONG,)),
    ("urn escaped too long", Code.FIELD_TOO_LONG, parse_sgtin_urn, ("urn:epc:id:sgtin:0614141.107346." + "%2F" * 21,)),
    ("sscc urn digits", Code.MALFORMED_URN, parse_sscc_urn, ("urn:epc:id:sscc:030001.4123456789",)),
    ("sgln urn digits", Code.MALFORMED_URN, parse_sgln_urn, ("urn:epc:id:sgln:785783.43847.0",)),
    ("dl scheme", Code.MALFORMED_DIGITAL_LINK, parse_digital_link, ("ftp://id.gs1.org/01/09506000134352",)),
    ("dl not a uri", Code.MALFORMED_DIGITAL_LINK, parse_digital_link, ("01/09506000134352",)),
    ("dl host", Code.MALFORMED_DIGITAL_LINK, parse_digital_link, ("https://bad_host/01/09506000134352",)),
    ("dl no primary key", Code.MALFORMED_DIGITAL_LINK, parse_digital_link, ("https://id.gs1.org/99/09506000134352",)),
    ("dl gtin13", Code.MALFORMED_DIGITAL_LINK, parse_digital_link, ("https://id.gs1.org/01/4006381333931",)),
    (
        "dl qualifier order",
        Code.MALFORMED_DIGITAL_LINK,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352/21/S/10/L",),
    ),
    (
        "dl repeated qualifier",
        Code.MALFORMED_DIGITAL_LINK,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352/10/L/10/M",),
    ),
    (
        "dl lot twice",
        Code.MALFORMED_DIGITAL_LINK,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352/10/L?10=L",),
    ),
    (
        "dl expiry in path",
        Code.MALFORMED_DIGITAL_LINK,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352/17/261231",),
    ),
    (
        "dl serial in query",
        Code.MALFORMED_DIGITAL_LINK,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352?21=S",),
    ),
    (
        "dl empty query value",
        Code.MALFORMED_DIGITAL_LINK,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352?17=",),
    ),
    (
        "dl empty segment",
        Code.MALFORMED_DIGITAL_LINK,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352/21/",),
    ),
    (
        "dl bad escape",
        Code.MALFORMED_DIGITAL_LINK,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352/21/a%G1",),
    ),
    (
        "dl sscc as product",
        Code.MALFORMED_DIGITAL_LINK,
        parse_digital_link,
        ("https://id.gs1.org/00/403000112345678901",),
    ),
    (
        "dl product as sscc",
        Code.MALFORMED_DIGITAL_LINK,
        SSCC.from_digital_link,
        ("https://id.gs1.org/01/09506000134352", 6),
    ),
    (
        "dl product as sgln",
        Code.MALFORMED_DIGITAL_LINK,
        SGLN.from_digital_link,
        ("https://id.gs1.org/01/09506000134352", 6),
    ),
    ("dl bad domain", Code.MALFORMED_DIGITAL_LINK, ProductIdentifier("09506000134352").digital_link, ("id.gs1.org",)),
    (
        "dl domain with query",
        Code.MALFORMED_DIGITAL_LINK,
        ProductIdentifier("09506000134352").digital_link,
        ("https://x.org?a=1",),
    ),
    ("dl raw quote", Code.ILLEGAL_CHARACTER, parse_digital_link, ('https://id.gs1.org/01/09506000134352/21/a"b',)),
    (
        "dl escaped space",
        Code.ILLEGAL_CHARACTER,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352/21/a%20b",),
    ),
    (
        "dl serial too long",
        Code.FIELD_TOO_LONG,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352/21/" + LONG,),
    ),
    ("dl bad expiry", Code.BAD_DATE, parse_digital_link, ("https://id.gs1.org/01/09506000134352?17=261331",)),
    (
        "dl unsupported qualifier",
        Code.UNSUPPORTED_AI,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352/22/X",),
    ),
    (
        "dl unsupported attribute",
        Code.UNSUPPORTED_AI,
        parse_digital_link,
        ("https://id.gs1.org/01/09506000134352?3103=000195",),
    ),
    ("es empty", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("",)),
    ("es only symbology id", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("]d2",)),
    ("es unknown symbology id", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("]X10109506000134352",)),
    ("es no gtin", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("10LOT",)),
    ("es short gtin", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("01950600013435",)),
    ("es gs inside fixed", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("01095060001" + GS + "34352",)),
    ("es double gs", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("0109506000134352" + GS + GS + "10L",)),
    ("es empty lot", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("010950600013435210" + GS + "21S",)),
    ("es garbage ai", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("0109506000134352XY",)),
    ("es conflicting ai", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("010950600013435210A" + GS + "10B",)),
    ("es bracket unclosed", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("(01",)),
    ("es bracket wrong length", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("(01)9506000134352",)),
    ("es bracket empty value", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("(01)09506000134352(10)",)),
    ("es bracket garbage ai", Code.MALFORMED_ELEMENT_STRING, parse_element_string, ("(0A)09506000134352",)),
    ("es gtin letters", Code.MALFORMED_IDENTIFIER, parse_element_string, ("01A9506000134352",)),
    ("es bad date", Code.BAD_DATE, parse_element_string, ("011234567890123117200230",)),
    ("es date letters", Code.BAD_DATE, parse_element_string, ("01123456789012311720013X",)),
    ("es illegal char", Code.ILLEGAL_CHARACTER, parse_element_string, ("010950600013435221A#B",)),
    ("es bracket stray backslash", Code.ILLEGAL_CHARACTER, parse_element_string, ("(01)09506000134352(10)A\\B",)),
    ("es lot too long", Code.FIELD_TOO_LONG, parse_element_string, ("010950600013435210" + LONG,)),
    ("es serial too long", Code.FIELD_TOO_LONG, parse_element_string, ("(01)09506000134352(21)" + LONG,)),
    ("es unsupported ai", Code.UNSUPPORTED_AI, parse_element_string, ("0109506000134352" + "7140012345",)),
    ("es bracket unsupported ai", Code.UNSUPPORTED_AI, parse_element_string, ("(01)09506000134352(714)0012345",)),
    ("date month", Code.BAD_DATE, validate_yymmd0, ("261300",)),
    ("iso date shape", Code.BAD_DATE, yymmd0_from_iso, ("2026-5-30",)),
    ("iso date calendar", Code.BAD_DATE, yymmd0_from_iso, ("2026-02-30",)),
    ("epoch days range", Code.BAD_DATE, yymmd0_from_epoch_days, (10**9,)),
    ("epoch days type", Code.BAD_DATE, yymmd0_from_epoch_days, (1.5,)),
]


@pytest.mark.parametrize(("code", "fn", "args"), [c[1:] for c in NEGATIVE], ids=[c[0] for c in NEGATIVE])
def test_refusals(code: Code, fn: Callable[..., object], args: tuple[Any, ...]) -> None:
    _refused(code, fn, *args)


def test_refusals_needing_keywords() -> None:
    _refused(Code.BAD_DATE, yymmd0_to_iso, "260530", reference_year=99)
    _refused(Code.BAD_DATE, resolve_century, 100, reference_year=2026)
    _refused(Code.BAD_DATE, resolve_century, "26", reference_year=2026)
    _refused(Code.BAD_DATE, yymmd0_to_iso, "000100", reference_year=9900)  # outside 100-9899
    assert yymmd0_to_iso("000100", reference_year=9899) == "9900-01-31"
    _refused(Code.BAD_DATE, ProductIdentifier("09506000134352", expiry="000229").expiry_iso, reference_year=2070)
    err = _refused(Code.ILLEGAL_CHARACTER, ProductIdentifier, "09506000134352", lot="É")
    assert "character set 82" in err.message
    assert str(err).startswith("ILLEGAL_CHARACTER (3007): ")


def test_every_code_has_a_negative_test() -> None:
    covered = {c[1] for c in NEGATIVE}
    assert covered == GS1_CODES


# ------------------------------------------------------------------------------------- properties

digit = st.sampled_from("0123456789")
serial_text = st.text(alphabet=sorted(CSET82), min_size=1, max_size=20)


@st.composite
def gtin14(draw: st.DrawFn) -> str:
    body = "".join(draw(st.lists(digit, min_size=13, max_size=13)))
    return body + str(check_digit(body))


@st.composite
def yymmd0(draw: st.DrawFn) -> str:
    yy, mm = draw(st.integers(0, 99)), draw(st.integers(1, 12))
    last = (
        29 if mm == 2 and yy % 4 == 0 else (28 if mm == 2 else [31, 0, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mm - 1])
    )
    return f"{yy:02d}{mm:02d}{draw(st.integers(0, last)):02d}"


products = st.builds(
    ProductIdentifier,
    gtin14(),
    serial=st.none() | serial_text,
    lot=st.none() | serial_text,
    expiry=st.none() | yymmd0(),
)
domains = st.sampled_from(["https://id.gs1.org", "https://example.com/dl/v1", "http://10.0.0.1:8080", "https://a.b/"])


@DERANDOMIZED
@given(st.integers(1, 17).flatmap(lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)), digit)
def test_property_check_digit(body: str, wrong: str) -> None:
    good = str(check_digit(body))
    assert has_valid_check_digit(body + good)
    assert has_valid_check_digit(body + wrong) == (wrong == good)


@DERANDOMIZED
@given(gtin14(), st.sampled_from([8, 12, 13, 14]))
def test_property_gtin_normalisation(gtin: str, length: int) -> None:
    short = gtin[14 - length :]
    body = short[:-1]
    short = body + str(check_digit(body))
    assert parse_gtin(short) == short.zfill(14)


@DERANDOMIZED
@given(gtin14(), serial_text, st.integers(6, 12))
def test_property_sgtin_round_trip(gtin: str, serial: str, gcp_length: int) -> None:
    sgtin = SGTIN.from_gtin(gtin, serial, gcp_length)
    assert sgtin.gtin == gtin and sgtin.company_prefix_length == gcp_length
    urn = sgtin.urn
    assert parse_sgtin_urn(urn) == sgtin
    assert not set(urn.split(".", 2)[2]) & set('"&/<>?')
    assert sgtin_urn_to_gtin(urn) == (gtin, serial)
    link = sgtin_urn_to_digital_link(urn)
    assert digital_link_to_sgtin_urn(link, gcp_length) == urn


@DERANDOMIZED
@given(serial_text)
def test_property_epc_escaping(value: str) -> None:
    assert unescape_epc_component(escape_epc_component(value)) == value


@DERANDOMIZED
@given(products, domains, st.booleans(), st.booleans())
def test_property_product_round_trips(pid: ProductIdentifier, domain: str, sym: bool, lot_in_query: bool) -> None:
    text = pid.element_string(symbology_identifier=sym)
    assert parse_element_string(text) == pid
    assert parse_element_string(pid.bracketed()) == pid
    link = pid.digital_link(domain, lot_in_query=lot_in_query)
    assert parse_digital_link(link) == pid
    assert digital_link_to_element_string(link) == pid.element_string()
    assert parse_digital_link(element_string_to_digital_link(text, domain)) == pid
    if pid.serial is not None:
        assert pid.sgtin(7).product_identifier() == ProductIdentifier(pid.gtin, serial=pid.serial)


@DERANDOMIZED
@given(st.integers(1951, 9000), st.integers(-49, 50), st.integers(1, 12), st.integers(1, 31))
def test_property_date_window(reference: int, offset: int, month: int, day: int) -> None:
    year = reference + offset
    day = min(
        day,
        [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][
            month - 1
        ],
    )
    iso = f"{year:04d}-{month:02d}-{day:02d}"
    code = yymmd0_from_iso(iso)
    assert yymmd0_to_iso(code, reference_year=reference) == iso
    days = (dt.date(year, month, day) - dt.date(1970, 1, 1)).days
    assert yymmd0_to_epoch_days(code, reference_year=reference) == days
    assert yymmd0_from_epoch_days(days) == code


@DERANDOMIZED
@given(st.text(alphabet="0123456789", min_size=17, max_size=17), st.integers(6, 12))
def test_property_sscc_round_trip(body: str, gcp_length: int) -> None:
    sscc = SSCC.from_sscc(body + str(check_digit(body)), gcp_length)
    assert parse_sscc_urn(sscc.urn) == sscc
    assert SSCC.from_digital_link(sscc.digital_link(), gcp_length) == sscc


@DERANDOMIZED
@given(st.text(alphabet="0123456789", min_size=12, max_size=12), st.integers(6, 12), st.none() | serial_text)
def test_property_sgln_round_trip(body: str, gcp_length: int, ext: str | None) -> None:
    sgln = SGLN.from_gln(body + str(check_digit(body)), gcp_length, extension=ext)
    assert parse_sgln_urn(sgln.urn) == sgln
    assert SGLN.from_digital_link(sgln.digital_link(), gcp_length) == sgln


PARSERS: list[Callable[[str], object]] = [
    parse_gtin,
    parse_sscc,
    parse_sgtin_urn,
    parse_sscc_urn,
    parse_sgln_urn,
    parse_digital_link,
    parse_element_string,
    validate_yymmd0,
    yymmd0_from_iso,
    unescape_epc_component,
    lambda t: SGLN.from_digital_link(t, 6),
    lambda t: SSCC.from_digital_link(t, 6),
]
PREFIXES = ["", "]d2", "01" + "09506000134352", "(01)09506000134352(", "urn:epc:id:sgtin:0614141.107346."]
PREFIXES += ["urn:epc:id:sgln:785783.438478.", "https://id.gs1.org/01/09506000134352/", "https://id.gs1.org/414/"]


@DERANDOMIZED
@given(st.sampled_from(PREFIXES), st.text(alphabet=sorted(CSET82 | {GS, "\\", "#", " ", "é", "/", "?", "="})))
def test_property_parsers_refuse_only_with_gs1_error(prefix: str, tail: str) -> None:
    for parser in PARSERS:
        try:
            parser(prefix + tail)
        except GS1Error as err:
            assert 3000 < err.code < 4000 and err.message
