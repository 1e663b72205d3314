"""Vectors of the envelope: signers, nonces, types and payloads, the order of the checks, and signatures
that a strict Ed25519 verifier refuses (docs/protocol.md sections 2 and 4.1)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import nacl.signing

from careledger.core import codec
from careledger.core.crypto import ED25519_L, SigningKey, signing_message
from careledger.core.tx import body_of
from careledger.node.mempool import QUEUE_WINDOW
from vectors.builder import CHAIN_ID, ORGS, Builder, admin, body_bytes, key, nonce, signed_with

H, P = ORGS[0][0], ORGS[1][0]
DOCTOR, STRANGER = key("member/doctor"), key("stranger")
SET_API = {"api": "https://a.example", "org": H}
IDENTITY_POINT = "01" + "00" * 31  # the neutral element (0, 1): a point of order 1
BASE_POINT = "58" + "66" * 31  # the Ed25519 base point B, canonical encoding


def flipped(signature: bytes) -> bytes:
    """The signature with one bit of S changed: well-formed, but it signs nothing."""
    return signature[:40] + bytes([signature[40] ^ 0x01]) + signature[41:]


def secret_scalar(signer: SigningKey) -> int:
    """RFC 8032 section 5.1.5: the clamped scalar a of the key (A = [a]B)."""
    h = bytearray(hashlib.sha512(signer.seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def challenge(r: bytes, public_key: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + public_key + message).digest(), "little") % ED25519_L


def envelope_unknown_signer() -> dict[str, Any]:
    b = Builder()
    raw = b.tx(STRANGER, "identity.set_org_api", {"api": None, "org": H})
    return b.vector("envelope_unknown_signer", "A key that is neither member nor patient: invalid (204).",
                    [raw], [nonce(STRANGER)], [(False, 204)])


def envelope_nonces() -> dict[str, Any]:
    b = Builder()
    b.pre(b.tx(admin(H), "identity.set_org_api", {"api": "https://a.example", "org": H}))
    replay = b.tx(admin(H), "identity.set_org_api", {"api": None, "org": H}, nonce=1)
    # beyond the window in which a node queues a nonce that is ahead (protocol.md section 5), so every
    # admission path refuses it as block execution does
    gap = b.tx(admin(H), "identity.set_org_api", {"api": None, "org": H}, nonce=2 + QUEUE_WINDOW)
    good = b.tx(admin(H), "identity.set_org_api", {"api": None, "org": H}, nonce=2)
    return b.vector("envelope_nonces",
                    f"Nonce 1 again is replayed (301), nonce {2 + QUEUE_WINDOW} is ahead beyond the queue's "
                    "window (302), nonce 2 applies.",
                    [replay, gap, good], [nonce(admin(H)), f"identity/org/{H}"],
                    [(False, 301), (False, 302), (True, 0)])


def envelope_unknown_type_and_payload() -> dict[str, Any]:
    b = Builder()
    unknown = b.tx(admin(H), "identity.teleport", {}, nonce=1)
    version = b.tx(admin(H), "identity.enrol_member", {}, nonce=1, version=9)
    extra = b.tx(admin(H), "identity.enrol_member", {"member": DOCTOR.public_hex, "org": H, "roles": ["nurse"],
                                                     "surname": "Doe"}, nonce=1)
    bad_key = b.tx(admin(H), "identity.enrol_member", {"member": DOCTOR.public_hex.upper(), "org": H,
                                                       "roles": ["nurse"]}, nonce=1)
    return b.vector("envelope_unknown_type_and_payload",
                    "Unknown type (104), unknown version (104), an extra payload field and an upper-case key (105).",
                    [unknown, version, extra, bad_key], [nonce(admin(H))],
                    [(False, 104), (False, 104), (False, 105), (False, 105)])


def _badly_signed(signer: SigningKey, tx_type: str, payload: dict[str, Any], nonce: int = 1,
                  chain_id: str = CHAIN_ID, signer_hex: str | None = None) -> bytes:
    body = body_bytes(signer_hex or signer.public_hex, tx_type, payload, nonce, chain_id)
    return signed_with(signer, flipped(signer.sign("tx", chain_id, body)), tx_type, payload, nonce, chain_id,
                       signer_hex=signer_hex)


def envelope_check_order() -> dict[str, Any]:
    """Each transaction has two or more faults; the code is that of the check that comes first."""
    b = Builder()
    me = admin(H)
    enrol_without_member = {"org": H, "roles": ["nurse"]}
    bad_gtin = {"gtin": "00614141000013", "serial": "S1"}  # the check digit should be 2
    txs = [
        _badly_signed(me, "identity.teleport", {}),  # bad signature + unknown type: 104
        _badly_signed(me, "identity.enrol_member", enrol_without_member),  # bad signature + bad payload: 105
        _badly_signed(me, "supply.verify", bad_gtin),  # bad signature + bad check digit: the payload's 3001
        _badly_signed(me, "identity.teleport", {}, chain_id="careledger-other"),  # wrong chain + unknown type: 201
        _badly_signed(me, "identity.teleport", {}, signer_hex=me.public_hex.upper()),  # malformed signer: 204
        codec.encode({"body": body_of(CHAIN_ID, "identity.teleport", 1, me.public_hex, 1, {}),
                      "sig": "zz" * 64}),  # sig not hex + unknown type: 202
        _badly_signed(STRANGER, "identity.set_org_api", SET_API),  # unknown signer + bad signature: 202
        # unknown signer, or not this org's admin, + a nonce ahead beyond the queue's window: 302 (within
        # it, a node queues the transaction only once the signer and its authorisation pass)
        b.tx(STRANGER, "identity.set_org_api", SET_API, nonce=1 + QUEUE_WINDOW),
        b.tx(admin(P), "identity.set_org_api", SET_API, nonce=1 + QUEUE_WINDOW),
        b.tx(me, "identity.set_org_api", SET_API, nonce=1),  # and the one without a fault
    ]
    return b.vector("envelope_check_order",
                    "Transactions with several faults get the code of the first check in docs/protocol.md "
                    "section 4.1: a bad signature loses to an unknown type (104), a bad payload (105) or a bad "
                    "check digit (3001); a wrong chain (201), a malformed signer (204) or sig (202) win over "
                    "an unknown type; the signature (202) before the signer's membership; a nonce ahead beyond "
                    "the queue's window (302) before the signer and its authorisation.",
                    txs, [nonce(me), nonce(STRANGER), nonce(admin(P)), f"identity/org/{H}"],
                    [(False, 104), (False, 105), (False, 3001), (False, 201), (False, 204), (False, 202),
                     (False, 202), (False, 302), (False, 302), (True, 0)])


def envelope_signature_domain_and_chain() -> dict[str, Any]:
    """The admin's genuine signatures over the exact body bytes, made for the wrong purpose or chain."""
    b = Builder()
    me = admin(H)
    body = body_bytes(me.public_hex, "identity.set_org_api", SET_API, 1)
    txs = [signed_with(me, sig, "identity.set_org_api", SET_API, 1) for sig in (
        me.sign("request", CHAIN_ID, body),  # domain "request"
        me.sign("block", CHAIN_ID, body),  # domain "block"
        nacl.signing.SigningKey(me.seed).sign(body).signature,  # no domain at all: plain Ed25519 of the body
        me.sign("tx", "careledger-other", body),  # domain "tx" of another chain, body naming this one
        flipped(me.sign("tx", CHAIN_ID, body)),  # one bit of S changed
        admin(P).sign("tx", CHAIN_ID, body),  # another member's valid signature of this body
    )]
    other_chain = signed_with(me, me.sign("tx", "careledger-other", body_bytes(
        me.public_hex, "identity.set_org_api", SET_API, 1, "careledger-other")), "identity.set_org_api", SET_API, 1,
        chain_id="careledger-other")  # a transaction of another chain, signed for it: 201
    good = b.tx(me, "identity.set_org_api", SET_API, nonce=1)
    return b.vector("envelope_signature_domain_and_chain",
                    "Signatures over the right bytes for another domain (request, block, none), for another "
                    "chain, with a bit changed or by another key are 202; a transaction of another chain is 201. "
                    "Only the last, signed for domain tx on this chain, is included.",
                    [*txs, other_chain, good], [nonce(me)], [(False, 202)] * 6 + [(False, 201), (True, 0)])


def envelope_signature_malleability() -> dict[str, Any]:
    """Signatures that satisfy the bare group equation [S]B = R + [k]A but that a strict verifier refuses."""
    b = Builder()
    me = admin(H)
    body = body_bytes(me.public_hex, "identity.set_org_api", SET_API, 1)
    message = signing_message("tx", CHAIN_ID, body)
    genuine = me.sign("tx", CHAIN_ID, body)
    s_plus_l = (int.from_bytes(genuine[32:], "little") + ED25519_L).to_bytes(32, "little")
    identity_r = bytes.fromhex(IDENTITY_POINT)
    small_s = (challenge(identity_r, me.public_key, message) * secret_scalar(me) % ED25519_L).to_bytes(32, "little")
    fake = bytes.fromhex(IDENTITY_POINT)  # a "patient" whose key is the neutral element
    fake_sig = bytes.fromhex(BASE_POINT) + (1).to_bytes(32, "little")  # [1]B = B + [k]O for every message
    txs = [
        signed_with(me, genuine[:32] + s_plus_l, "identity.set_org_api", SET_API, 1),  # S + L: non-canonical S
        signed_with(me, identity_r + small_s, "identity.set_org_api", SET_API, 1),  # R of small order
        signed_with(me, fake_sig, "identity.register_patient", {}, 1, signer_hex=fake.hex()),  # small-order key
        signed_with(me, bytes.fromhex("ecff" + "ff" * 29 + "7f") + genuine[32:], "identity.set_org_api", SET_API,
                    1),  # R of order 2, (0, -1)
        b.tx(me, "identity.set_org_api", SET_API, nonce=1),
    ]
    return b.vector("envelope_signature_malleability",
                    "A genuine signature with L added to S, a signature with R = the neutral element and "
                    "S = k*a, the neutral element as a patient's key with R = B and S = 1 (each satisfies "
                    "[S]B = R + [k]A), and R of order 2: all refused with 202, whatever the Ed25519 library; "
                    "the genuine signature is included.",
                    txs, [nonce(me), f"identity/key/{fake.hex()}"], [(False, 202)] * 4 + [(True, 0)])


VECTORS: list[Callable[[], dict[str, Any]]] = [
    envelope_unknown_signer, envelope_nonces, envelope_unknown_type_and_payload, envelope_check_order,
    envelope_signature_domain_and_chain, envelope_signature_malleability,
]
