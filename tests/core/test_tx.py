"""The signed transaction envelope: every bad input gets its stable code; signatures are domain-bound."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import nacl.signing
import pytest

from careledger.chain.executor import Chain, check_stateless
from careledger.core import codec
from careledger.core.crypto import ED25519_SHA256, SigningKey, parse_public_key, signing_message
from careledger.core.errors import AuthError, Code, EncodingError, InvalidTx, LedgerError
from careledger.core.tx import body_of, decode_tx, sign_tx
from support import CHAIN_ID, Consortium, make_consortium, seeded_key

KEY = seeded_key("tx/alice")
ENROL: dict[str, Any] = {"member": seeded_key("tx/bob").public_hex, "org": "hospital", "roles": ["physician"]}


def signed(payload: dict[str, Any] | None = None, *, key: SigningKey = KEY, chain_id: str = CHAIN_ID,
           tx_type: str = "identity.enrol_member", version: int = 1, nonce: int = 1) -> bytes:
    return sign_tx(key, chain_id, tx_type, version, nonce, ENROL if payload is None else payload)


def decode(raw: bytes, **kw: Any) -> Any:
    return decode_tx(raw, CHAIN_ID, ED25519_SHA256, **kw)


def resign(doc: dict[str, Any], key: SigningKey = KEY, chain_id: str = CHAIN_ID, domain: str = "tx") -> bytes:
    """Re-sign an edited body properly, so only the edit can be the reason for refusal."""
    sig = key.sign(domain, chain_id, codec.encode(doc["body"]))
    return codec.encode({"body": doc["body"], "sig": sig.hex()})


def refused(raw: bytes, code: Code, exc_type: type[LedgerError] = InvalidTx, **kw: Any) -> LedgerError:
    with pytest.raises(exc_type) as err:
        decode(raw, **kw)
    assert err.value.code == code, err.value
    return err.value


# -- the happy path -----------------------------------------------------------------------------------

def test_sign_and_decode_roundtrip() -> None:
    raw = signed(nonce=7)
    tx = decode(raw)
    assert tx.raw == raw
    assert tx.hash == hashlib.sha256(raw).digest()
    assert tx.hash_hex == tx.hash.hex()
    assert (tx.type, tx.version, tx.nonce, tx.chain_id) == ("identity.enrol_member", 1, 7, CHAIN_ID)
    assert tx.kind == ("identity.enrol_member", 1)
    assert tx.signer == KEY.public_key and tx.signer_hex == KEY.public_hex
    assert tx.payload == ENROL
    # the wire form is canonical and carries exactly body and sig
    doc = codec.decode(raw)
    assert list(doc) == ["body", "sig"]
    assert doc["body"] == body_of(CHAIN_ID, "identity.enrol_member", 1, KEY.public_hex, 7, ENROL)
    # the signature covers the domain-separated body
    message = signing_message("tx", CHAIN_ID, codec.encode(doc["body"]))
    nacl.signing.VerifyKey(KEY.public_key).verify(message, bytes.fromhex(doc["sig"]))


def test_signing_is_deterministic() -> None:
    assert signed() == signed()
    assert signed(nonce=1) != signed(nonce=2)


def test_signing_message_layout() -> None:
    assert signing_message("tx", "c-1", b"{}") == b"CareLedger/tx/v1\x00c-1\x00{}"
    assert signing_message("block", "c", b"\x00") == b"CareLedger/block/v1\x00c\x00\x00"
    with pytest.raises(ValueError):
        signing_message("txs", "c", b"")


# -- encoding ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff\xfe", b'{"body":', b'{"body":{},"sig":1.5}',
                                 b'{"a":1,"a":2}', b"[" * 50_000 + b"]" * 50_000])
def test_malformed_encoding(raw: bytes) -> None:
    refused(raw, Code.MALFORMED_ENCODING, EncodingError)


def test_float_inside_payload_is_malformed() -> None:
    text = signed().decode().replace('"roles":["physician"]', '"roles":["physician"],"x":1.5')
    refused(text.encode(), Code.MALFORMED_ENCODING)


def test_non_canonical_encoding() -> None:
    raw = signed()
    doc = json.loads(raw)
    for variant in (json.dumps(doc), json.dumps(doc, indent=1), json.dumps(doc, sort_keys=True),
                    raw.decode() + "\n", " " + raw.decode()):
        refused(variant.encode(), Code.NON_CANONICAL_ENCODING, EncodingError)
    # keys out of order: same value, other bytes
    reordered = '{"sig":' + json.dumps(doc["sig"]) + ',"body":' + codec.encode(doc["body"]).decode() + "}"
    refused(reordered.encode(), Code.NON_CANONICAL_ENCODING)


def test_oversized() -> None:
    raw = signed({**ENROL, "handle": "h"})
    assert decode(raw, max_bytes=len(raw)).raw == raw  # exactly at the limit is fine
    refused(raw, Code.OVERSIZED, EncodingError, max_bytes=len(raw) - 1)
    # the size check comes first: even garbage over the limit is OVERSIZED
    refused(b"x" * 2000, Code.OVERSIZED, max_bytes=1024)


def test_oversized_under_genesis_limit() -> None:
    consortium = make_consortium(params={"max_tx_bytes": 1024})
    chain = consortium.chain()
    big = signed({**ENROL, "handle": "h" * 60, "padding": "p" * 1200})
    with pytest.raises(EncodingError) as err:
        check_stateless(chain, big)
    assert err.value.code == Code.OVERSIZED


# -- signatures ------------------------------------------------------------------------------------------

def test_missing_signature() -> None:
    doc = codec.decode(signed())
    refused(codec.encode({"body": doc["body"]}), Code.MISSING_SIGNATURE, AuthError)
    refused(codec.encode({"body": doc["body"], "sig": None}), Code.MISSING_SIGNATURE, AuthError)
    refused(codec.encode({"body": doc["body"], "sig": ""}), Code.MISSING_SIGNATURE, AuthError)


def test_bad_signature_variants() -> None:
    raw = signed()
    doc = codec.decode(raw)
    sig = bytes.fromhex(doc["sig"])
    for i in (0, 31, 63):
        flipped = bytearray(sig)
        flipped[i] ^= 0x01
        refused(codec.encode({**doc, "sig": flipped.hex()}), Code.BAD_SIGNATURE, AuthError)
    # a valid signature by another key over the same body
    other = seeded_key("tx/mallory").sign("tx", CHAIN_ID, codec.encode(doc["body"]))
    refused(codec.encode({**doc, "sig": other.hex()}), Code.BAD_SIGNATURE)
    # the body changed after signing
    tampered = {"body": {**doc["body"], "nonce": 2}, "sig": doc["sig"]}
    refused(codec.encode(tampered), Code.BAD_SIGNATURE)
    tampered = {"body": {**doc["body"], "payload": {**ENROL, "roles": ["nurse"]}}, "sig": doc["sig"]}
    refused(codec.encode(tampered), Code.BAD_SIGNATURE)
    # shape of the sig field
    for bad in (doc["sig"][:-2], doc["sig"] + "00", doc["sig"].upper(), "zz" * 64, 12345, ["x"]):
        refused(codec.encode({**doc, "sig": bad}), Code.BAD_SIGNATURE, AuthError)


def test_signature_domain_separation() -> None:
    doc = codec.decode(signed())
    body = codec.encode(doc["body"])
    # the same key and body, signed for another purpose or another chain, or with no domain at all
    for forged in (KEY.sign("block", CHAIN_ID, body), KEY.sign("request", CHAIN_ID, body),
                   KEY.sign("proof", CHAIN_ID, body), KEY.sign("tx", "careledger-other", body),
                   KEY.sign("tx", CHAIN_ID + "x", body),
                   nacl.signing.SigningKey(KEY.seed).sign(body).signature):
        refused(codec.encode({**doc, "sig": forged.hex()}), Code.BAD_SIGNATURE, AuthError)
    # and the proper one verifies
    assert decode(codec.encode({**doc, "sig": KEY.sign("tx", CHAIN_ID, body).hex()})).nonce == 1


def test_suite_verify_raises_never_returns_false() -> None:
    msg = b"hello"
    sig = KEY.sign("request", CHAIN_ID, msg)
    ED25519_SHA256.verify(KEY.public_key, "request", CHAIN_ID, msg, sig)  # raises if it fails
    for args in [(KEY.public_key, "request", CHAIN_ID, msg + b"!", sig),
                 (KEY.public_key, "tx", CHAIN_ID, msg, sig),
                 (seeded_key("x").public_key, "request", CHAIN_ID, msg, sig),
                 (KEY.public_key, "request", CHAIN_ID, msg, sig[:63]),
                 (KEY.public_key[:31], "request", CHAIN_ID, msg, sig)]:
        with pytest.raises(AuthError) as err:
            ED25519_SHA256.verify(*args)
        assert err.value.code == Code.BAD_SIGNATURE


def test_signing_key_checks() -> None:
    with pytest.raises(ValueError):
        SigningKey(b"\x00" * 31)
    key = SigningKey(bytes(range(32)))
    assert key.seed == bytes(range(32))
    assert key.public_hex == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert key.seed.hex() not in repr(key) and bytes(range(32)).hex()[:16] not in repr(key)
    assert SigningKey.generate().public_key != SigningKey.generate().public_key


def test_parse_public_key() -> None:
    assert parse_public_key(KEY.public_hex) == KEY.public_key
    for bad in (KEY.public_hex.upper(), KEY.public_hex[:-2], KEY.public_hex + "00", "g" * 64, ""):
        with pytest.raises(AuthError) as err:
            parse_public_key(bad)
        assert err.value.code == Code.UNKNOWN_SIGNER


def test_verify_signature_flag_skips_only_the_signature() -> None:
    doc = codec.decode(signed())
    bad = codec.encode({**doc, "sig": "00" * 64})
    refused(bad, Code.BAD_SIGNATURE)
    assert decode(bad, verify_signature=False).nonce == 1
    # other checks still run
    refused(codec.encode({**doc, "sig": "00" * 63}), Code.BAD_SIGNATURE, verify_signature=False)


# -- chain -----------------------------------------------------------------------------------------------

def test_wrong_chain() -> None:
    refused(signed(chain_id="careledger-other"), Code.WRONG_CHAIN, AuthError)
    # the chain id inside the body changed but the signature is for ours: still WRONG_CHAIN first
    doc = codec.decode(signed())
    refused(codec.encode({"body": {**doc["body"], "chain_id": "x"}, "sig": doc["sig"]}), Code.WRONG_CHAIN)
    refused(resign({"body": {**doc["body"], "chain_id": 7}}), Code.WRONG_CHAIN)


# -- envelope shape ----------------------------------------------------------------------------------

def envelope_variants() -> list[tuple[str, dict[str, Any], Code]]:
    doc = codec.decode(signed())
    body = doc["body"]
    without_nonce = {k: v for k, v in body.items() if k != "nonce"}
    return [
        ("extra envelope field", {**doc, "extra": 1}, Code.INVALID_PAYLOAD),
        ("no body", {"sig": doc["sig"]}, Code.INVALID_PAYLOAD),
        ("body not an object", {"body": [1], "sig": doc["sig"]}, Code.INVALID_PAYLOAD),
        ("body missing nonce", {"body": without_nonce}, Code.INVALID_PAYLOAD),
        ("body extra field", {"body": {**body, "memo": "x"}}, Code.INVALID_PAYLOAD),
        ("type without contract", {"body": {**body, "type": "enrol_member"}}, Code.INVALID_PAYLOAD),
        ("type upper case", {"body": {**body, "type": "Identity.enrol_member"}}, Code.INVALID_PAYLOAD),
        ("type not a string", {"body": {**body, "type": 5}}, Code.INVALID_PAYLOAD),
        ("version 0", {"body": {**body, "version": 0}}, Code.INVALID_PAYLOAD),
        ("version 65536", {"body": {**body, "version": 65536}}, Code.INVALID_PAYLOAD),
        ("version string", {"body": {**body, "version": "1"}}, Code.INVALID_PAYLOAD),
        ("version bool", {"body": {**body, "version": True}}, Code.INVALID_PAYLOAD),
        ("nonce 0", {"body": {**body, "nonce": 0}}, Code.INVALID_PAYLOAD),
        ("nonce negative", {"body": {**body, "nonce": -1}}, Code.INVALID_PAYLOAD),
        ("nonce string", {"body": {**body, "nonce": "1"}}, Code.INVALID_PAYLOAD),
        ("payload list", {"body": {**body, "payload": []}}, Code.INVALID_PAYLOAD),
        ("payload null", {"body": {**body, "payload": None}}, Code.INVALID_PAYLOAD),
        ("signer upper-case hex", {"body": {**body, "signer": body["signer"].upper()}}, Code.UNKNOWN_SIGNER),
        ("signer short", {"body": {**body, "signer": body["signer"][:62]}}, Code.UNKNOWN_SIGNER),
        ("signer not hex", {"body": {**body, "signer": "x" * 64}}, Code.UNKNOWN_SIGNER),
        ("signer number", {"body": {**body, "signer": 1}}, Code.UNKNOWN_SIGNER),
    ]


@pytest.mark.parametrize(("name", "doc", "code"), envelope_variants(), ids=[v[0] for v in envelope_variants()])
def test_envelope_shape(name: str, doc: dict[str, Any], code: Code) -> None:
    raw = resign(doc) if "sig" not in doc and "body" in doc else codec.encode(doc)
    refused(raw, code)


def test_largest_nonce_is_accepted() -> None:
    assert decode(signed(nonce=2**53 - 1)).nonce == 2**53 - 1


# -- type registry and payload shape (check_stateless) ----------------------------------------------------

def check(chain: Chain, raw: bytes, code: Code) -> None:
    with pytest.raises(InvalidTx) as err:
        check_stateless(chain, raw)
    assert err.value.code == code, err.value


def test_unknown_type_and_version(chain: Chain) -> None:
    check(chain, signed(tx_type="identity.teleport"), Code.UNKNOWN_TX_TYPE)
    check(chain, signed(tx_type="nosuch.enrol_member"), Code.UNKNOWN_TX_TYPE)
    check(chain, signed(version=2), Code.UNKNOWN_TX_TYPE)
    assert check_stateless(chain, signed()).tx.type == "identity.enrol_member"


BAD_PAYLOADS = [
    ("identity.enrol_member", {**ENROL, "extra": 1}),
    ("identity.enrol_member", {"org": "hospital", "roles": ["physician"]}),  # member missing
    ("identity.enrol_member", {**ENROL, "roles": "physician"}),  # wrong type
    ("identity.enrol_member", {**ENROL, "roles": []}),  # too few
    ("identity.enrol_member", {**ENROL, "roles": ["Physician"]}),  # pattern
    ("identity.enrol_member", {**ENROL, "member": ENROL["member"].upper()}),  # bad key hex
    ("identity.enrol_member", {**ENROL, "member": ENROL["member"][:40]}),
    ("identity.enrol_member", {**ENROL, "member": "zz" * 32}),
    ("identity.enrol_member", {**ENROL, "org": "Hospital!"}),
    ("identity.enrol_member", {**ENROL, "handle": "has space"}),
    ("identity.enrol_member", {**ENROL, "org": 7}),
    ("identity.revoke_member", {"member": ENROL["member"], "org": "hospital", "reason": ""}),
    ("identity.register_patient", {"name": "Jane Doe"}),  # no demographics, ever
    ("identity.set_org_api", {"api": "ftp://x", "org": "hospital"}),
    ("governance.vote", {"approve": 1, "proposal": "gp-" + "0" * 24}),  # strict: 1 is not a bool
    ("governance.vote", {"approve": True, "proposal": "gp-123"}),
    ("governance.propose", {"action": {"kind": "launch_rockets"}, "title": "t"}),
    ("governance.propose", {"action": {"kind": "set_validator", "org": "hospital", "power": "5",
                                       "pub_key": KEY.public_hex}, "title": "t"}),
    ("governance.propose", {"action": {"kind": "set_validator", "org": "hospital", "power": -1,
                                       "pub_key": KEY.public_hex}, "title": "t"}),
    ("governance.propose", {"action": {"kind": "remove_organisation", "org": "clinic"}, "title": ""}),
]


@pytest.mark.parametrize(("tx_type", "payload"), BAD_PAYLOADS,
                         ids=[f"{t}-{i}" for i, (t, _) in enumerate(BAD_PAYLOADS)])
def test_invalid_payload(chain: Chain, tx_type: str, payload: dict[str, Any]) -> None:
    check(chain, signed(payload, tx_type=tx_type), Code.INVALID_PAYLOAD)


def test_valid_payloads_parse(consortium: Consortium, chain: Chain) -> None:
    checked = check_stateless(chain, signed({**ENROL, "handle": "dr.who@hospital"}))
    assert checked.payload.handle == "dr.who@hospital"
    assert checked.handler.type == "identity.enrol_member"
    checked = check_stateless(chain, signed({"approve": False, "proposal": "gp-" + "a" * 24},
                                            tx_type="governance.vote"))
    assert checked.payload.approve is False
