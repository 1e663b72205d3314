"""Ed25519 negative tests in the style of pyca/cryptography: every signature a strict verifier must
refuse, refused with BAD_SIGNATURE by :mod:`careledger.core.crypto` whatever the library does.

Each malleable or degenerate case is built so that it *satisfies the plain group equation*
``[S]B == R + [k]A`` (checked here with a small reference implementation of RFC 8032's arithmetic),
so a lax verifier would accept it. The tests then show (1) what the linked libsodium says, (2) that
the node refuses it, and (3) that the node still refuses it when the library is replaced by that lax
verifier: the verdict does not depend on the library's version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from careledger.core import crypto
from careledger.core.crypto import (
    ED25519_L,
    ED25519_P,
    ED25519_SHA256,
    SMALL_ORDER_Y,
    SigningKey,
    check_ed25519_encoding,
    signing_message,
)
from careledger.core.errors import AuthError, Code

CHAIN = "careledger-test"
KEY = SigningKey(hashlib.sha256(b"test_crypto/key").digest())
MESSAGE = b'{"a":1}'

# -- RFC 8032 reference arithmetic (tests only: slow and not constant-time) ---------------------------------

D = -121665 * pow(121666, -1, ED25519_P) % ED25519_P
SQRT_M1 = pow(2, (ED25519_P - 1) // 4, ED25519_P)
Point = tuple[int, int]
IDENTITY: Point = (0, 1)


def _add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2
    return ((x1 * y2 + x2 * y1) * pow(1 + t, -1, ED25519_P) % ED25519_P,
            (y1 * y2 + x1 * x2) * pow(1 - t, -1, ED25519_P) % ED25519_P)


def _mul(k: int, point: Point) -> Point:
    out = IDENTITY
    while k:
        if k & 1:
            out = _add(out, point)
        point, k = _add(point, point), k >> 1
    return out


def _decode_point(data: bytes) -> Point | None:
    """RFC 8032 section 5.1.3, except that y >= p is reduced instead of refused (as lax decoders do)."""
    y = (int.from_bytes(data, "little") & ((1 << 255) - 1)) % ED25519_P
    sign = data[31] >> 7
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, ED25519_P) % ED25519_P
    x = pow(x2, (ED25519_P + 3) // 8, ED25519_P)
    if (x * x - x2) % ED25519_P:
        x = x * SQRT_M1 % ED25519_P
    if (x * x - x2) % ED25519_P:
        return None
    if x & 1 != sign:
        x = (ED25519_P - x) % ED25519_P  # x = 0 with the sign bit set: lax decoders take it as 0
    return (x, y)


def _encode_point(point: Point) -> bytes:
    x, y = point
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_BASE = _decode_point((4 * pow(5, -1, ED25519_P) % ED25519_P).to_bytes(32, "little"))  # y = 4/5, x even
assert _BASE is not None
BASE: Point = _BASE


def _k(r: bytes, public_key: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + public_key + message).digest(), "little") % ED25519_L


def _secret_scalar(key: SigningKey) -> int:
    h = bytearray(hashlib.sha512(key.seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def lax_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """The bare cofactorless equation, with none of the encoding checks: what a lax library accepts."""
    a, r = _decode_point(public_key), _decode_point(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    right = _add(r, _mul(_k(signature[:32], public_key, message), a))
    return _mul(s, BASE) == right


def encoding_of_y(y: int, sign: int = 0) -> bytes:
    return (y | (sign << 255)).to_bytes(32, "little")


# -- the malleable and degenerate signatures ------------------------------------------------------------

def signed_message() -> bytes:
    return signing_message("tx", CHAIN, MESSAGE)


def non_canonical_s() -> tuple[bytes, bytes]:
    """A genuine signature with L added to S: the same group element, a different byte string."""
    sig = KEY.sign("tx", CHAIN, MESSAGE)
    s = int.from_bytes(sig[32:], "little") + ED25519_L
    return KEY.public_key, sig[:32] + s.to_bytes(32, "little")


def small_order_r() -> tuple[bytes, bytes]:
    """R = the identity and S = k*a: [S]B = [k]A = R + [k]A. The key's owner can make such a signature."""
    r = encoding_of_y(1)
    s = _k(r, KEY.public_key, signed_message()) * _secret_scalar(KEY) % ED25519_L
    return KEY.public_key, r + s.to_bytes(32, "little")


def small_order_key() -> tuple[bytes, bytes]:
    """The identity as public key, R = B and S = 1: [1]B = B + [k]O, so it 'verifies' every message."""
    return encoding_of_y(1), _encode_point(BASE) + (1).to_bytes(32, "little")


def non_canonical_key() -> tuple[bytes, bytes]:
    """The point with y = 3 written as y + p (3 + p < 2^255): a second encoding of a valid key."""
    return encoding_of_y(3 + ED25519_P), KEY.sign("tx", CHAIN, MESSAGE)


def non_canonical_r() -> tuple[bytes, bytes]:
    sig = KEY.sign("tx", CHAIN, MESSAGE)
    return KEY.public_key, encoding_of_y(ED25519_P + 3) + sig[32:]


CASES: dict[str, tuple[Callable[[], tuple[bytes, bytes]], bool, str]] = {
    # name: (builder, satisfies the bare group equation, what the node says)
    "non-canonical S (S + L)": (non_canonical_s, True, "not reduced"),
    "small-order R": (small_order_r, True, "R has small order"),
    "small-order public key": (small_order_key, True, "public key is a point of small order"),
    "non-canonical public key (y + p)": (non_canonical_key, False, "public key is not canonically encoded"),
    "non-canonical R (y + p)": (non_canonical_r, False, "R is not canonically encoded"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_case_is_what_it_claims(name: str) -> None:
    """The malleable cases satisfy the group equation: a verifier without encoding checks accepts them."""
    build, equation_holds, _ = CASES[name]
    public_key, signature = build()
    assert lax_verify(public_key, signed_message(), signature) is equation_holds


@pytest.mark.parametrize("name", list(CASES))
def test_libsodium_refuses_each_case(name: str) -> None:
    """What the linked libsodium's ``crypto_sign_verify_detached`` does (for the record: it refuses all)."""
    public_key, signature = CASES[name][0]()
    with pytest.raises((nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError)):
        nacl.signing.VerifyKey(public_key).verify(signed_message(), signature)


@pytest.mark.parametrize("name", list(CASES))
def test_the_node_refuses_each_case_with_bad_signature(name: str) -> None:
    build, _, reason = CASES[name]
    public_key, signature = build()
    with pytest.raises(AuthError) as err:
        ED25519_SHA256.verify(public_key, "tx", CHAIN, MESSAGE, signature)
    assert err.value.code == Code.BAD_SIGNATURE and reason in err.value.message


class _LaxKey:
    """Stands in for libsodium's VerifyKey: only the group equation (a lax or older library)."""

    def __init__(self, public_key: bytes) -> None:
        self.public_key = public_key

    def verify(self, message: bytes, signature: bytes) -> bytes:
        if not lax_verify(self.public_key, message, signature):
            raise nacl.exceptions.BadSignatureError("lax verifier: equation fails")
        return message


@pytest.mark.parametrize("name", list(CASES))
def test_the_verdict_does_not_depend_on_the_library(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "_verify_key", _LaxKey)
    good = KEY.sign("tx", CHAIN, MESSAGE)
    ED25519_SHA256.verify(KEY.public_key, "tx", CHAIN, MESSAGE, good)  # the stand-in accepts a good one
    public_key, signature = CASES[name][0]()
    with pytest.raises(AuthError) as err:
        ED25519_SHA256.verify(public_key, "tx", CHAIN, MESSAGE, signature)
    assert err.value.code == Code.BAD_SIGNATURE


def test_every_small_order_encoding_is_refused_as_key_and_as_r() -> None:
    """All 8 small-order points, every encoding (both sign bits, y and y + p where it fits in 255 bits)."""
    torsion = {IDENTITY}
    for y in SMALL_ORDER_Y:
        for sign in (0, 1):
            point = _decode_point(encoding_of_y(y, sign))
            if point is not None:
                torsion.add(point)
    assert len(torsion) == 8 and all(_mul(8, t) == IDENTITY for t in torsion)  # the whole 8-torsion
    good = KEY.sign("tx", CHAIN, MESSAGE)
    encodings = {encoding_of_y(y, sign) for y in SMALL_ORDER_Y for sign in (0, 1)}
    assert {_encode_point(t) for t in torsion} <= encodings  # the canonical encodings are all listed
    for encoding in sorted(encodings):
        for public_key, signature in ((encoding, good), (KEY.public_key, encoding + good[32:])):
            with pytest.raises(AuthError) as err:
                check_ed25519_encoding(public_key, signature)
            assert err.value.code == Code.BAD_SIGNATURE


def test_a_mixed_order_key_is_not_small_order() -> None:
    """A key plus a torsion point is not of small order: it passes the encoding checks (the equation
    decides, cofactorless, as in libsodium)."""
    a = _decode_point(KEY.public_key)
    torsion = _decode_point(encoding_of_y(2707385501144840649318225287225658788936804267575313519463743609750303402022))
    assert a is not None and torsion is not None
    mixed = _encode_point(_add(a, torsion))
    check_ed25519_encoding(mixed, KEY.sign("tx", CHAIN, MESSAGE))  # no exception: not an encoding problem
    with pytest.raises(AuthError):
        ED25519_SHA256.verify(mixed, "tx", CHAIN, MESSAGE, KEY.sign("tx", CHAIN, MESSAGE))


def test_scalar_bounds() -> None:
    sig = KEY.sign("tx", CHAIN, MESSAGE)
    for s in (ED25519_L, ED25519_L + 1, 2**253, 2**256 - 1):
        with pytest.raises(AuthError, match="not reduced"):
            check_ed25519_encoding(KEY.public_key, sig[:32] + s.to_bytes(32, "little"))
    check_ed25519_encoding(KEY.public_key, sig[:32] + (ED25519_L - 1).to_bytes(32, "little"))  # in range


def test_lengths_are_checked_before_anything_else() -> None:
    sig = KEY.sign("tx", CHAIN, MESSAGE)
    for public_key, signature in ((KEY.public_key, sig[:63]), (KEY.public_key, sig + b"\x00"),
                                  (KEY.public_key[:31], sig), (KEY.public_key + b"\x00", sig)):
        with pytest.raises(AuthError) as err:
            ED25519_SHA256.verify(public_key, "tx", CHAIN, MESSAGE, signature)
        assert err.value.code == Code.BAD_SIGNATURE and "bytes" in err.value.message


@pytest.mark.parametrize("domain_or_chain", ["block", "request", "proof", "other-chain", "bare"])
def test_wrong_domain_or_chain(domain_or_chain: str) -> None:
    """The right key and bytes, signed for another purpose, another chain or with no domain at all."""
    if domain_or_chain == "bare":
        signature = nacl.signing.SigningKey(KEY.seed).sign(MESSAGE).signature
    elif domain_or_chain == "other-chain":
        signature = KEY.sign("tx", "careledger-other", MESSAGE)
    else:
        signature = KEY.sign(domain_or_chain, CHAIN, MESSAGE)
    check_ed25519_encoding(KEY.public_key, signature)  # a well-formed signature ...
    with pytest.raises(AuthError) as err:  # ... over other bytes
        ED25519_SHA256.verify(KEY.public_key, "tx", CHAIN, MESSAGE, signature)
    assert err.value.code == Code.BAD_SIGNATURE


RFC8032 = [  # RFC 8032 section 7.1, TEST 1 to 3: (secret key, public key, message, signature)
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe"
     "24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302a"
     "eeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed2"
     "8dc027beceea1ec40a"),
]


@pytest.mark.parametrize(("seed_hex", "public_hex", "message_hex", "signature_hex"), RFC8032)
def test_rfc8032_known_answers_pass_the_strict_checks(seed_hex: str, public_hex: str, message_hex: str,
                                                      signature_hex: str) -> None:
    public_key, signature = bytes.fromhex(public_hex), bytes.fromhex(signature_hex)
    assert SigningKey(bytes.fromhex(seed_hex)).public_key == public_key
    check_ed25519_encoding(public_key, signature)
    assert lax_verify(public_key, bytes.fromhex(message_hex), signature)
    nacl.signing.VerifyKey(public_key).verify(bytes.fromhex(message_hex), signature)


@seed(20_251_203)
@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=200))
def test_honest_signatures_are_never_refused(key_seed: bytes, message: bytes) -> None:
    """No false refusals: every signature an honest key makes passes the strict checks and verifies."""
    key = SigningKey(key_seed)
    signature = key.sign("tx", CHAIN, message)
    check_ed25519_encoding(key.public_key, signature)
    ED25519_SHA256.verify(key.public_key, "tx", CHAIN, message, signature)  # raises if refused
