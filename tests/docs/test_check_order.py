"""docs/protocol.md section 4.1 lists the checks a transaction goes through, in order; the code holds to it.

The table is read from the document. Each check has a *fault* here: a change to an otherwise valid
transaction that only that check refuses. A transaction with one fault gets that check's code; with
two faults, the code of the check that comes first in the document. Every pair is tried, through
the node's own functions: ``check_stateless`` (checks 1 to 16) then ``check_admission`` against
committed state (18 to 21). Checks 17 (duplicates) and 22 (mempool room) belong to a node's mempool;
tests/engines/test_vector_engines.py runs the check-order vector through both engines' admission.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.errors import LedgerError
from support import Ledger, make_consortium, seeded_key

PROTOCOL_MD = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")

CONSORTIUM = make_consortium(("hospital", "clinic"))
NEW_MEMBER, REVOKED, STRANGER = seeded_key("order/new"), seeded_key("order/revoked"), seeded_key("order/stranger")


def committed_ledger() -> Ledger:
    """Committed state: the hospital enrolled and then revoked a member."""
    ledger = Ledger(CONSORTIUM)
    ledger.enrol("hospital", REVOKED, ["nurse"])
    ledger.run(CONSORTIUM.admin("hospital"), "identity.revoke_member",
               {"member": REVOKED.public_hex, "org": "hospital", "reason": "left"})
    return ledger


LEDGER = committed_ledger()


@dataclass
class Draft:
    """A transaction under construction: the hospital's admin enrols a nurse, unless a fault says otherwise."""

    signer: SigningKey
    tx_type: str = "identity.enrol_member"
    version: int = 1
    payload: Any = None
    chain_id: str = CONSORTIUM.chain_id
    nonce: int | None = None  # None: the signer's next nonce
    nonce_ahead: bool = False
    signer_upper: bool = False
    sig_text: str | None = None
    flip: bool = False
    drop_sig: bool = False
    extra_envelope: bool = False
    extra_body: bool = False
    rename_body: bool = False
    non_canonical: bool = False
    oversize: bool = False

    def render(self) -> bytes:
        nonce = self.nonce
        if nonce is None:
            nonce = LEDGER.committed_nonce(self.signer) + (5 if self.nonce_ahead else 1)
        payload = {"member": NEW_MEMBER.public_hex, "org": "hospital", "roles": ["nurse"]} \
            if self.payload is None else self.payload
        signer = self.signer.public_hex.upper() if self.signer_upper else self.signer.public_hex
        body: dict[str, Any] = {"chain_id": self.chain_id, "nonce": nonce, "payload": payload, "signer": signer,
                                "type": self.tx_type, "version": self.version}
        if self.extra_body:
            body["extra"] = 1
        signature = bytearray(self.signer.sign("tx", self.chain_id, codec.encode(body)))
        if self.flip:
            signature[40] ^= 1
        doc: dict[str, Any] = {"bodx" if self.rename_body else "body": body}
        if not self.drop_sig:
            doc["sig"] = self.sig_text or signature.hex()
        if self.extra_envelope:
            doc["x"] = 1
        raw = codec.encode(doc)
        if self.non_canonical:
            raw = b"{ " + raw[1:]
        if self.oversize:
            raw += b" " * (CONSORTIUM.genesis.params.max_tx_bytes + 1)
        return raw


Fault = Callable[[Draft], None]


def _set(**changes: Any) -> Fault:
    def apply(draft: Draft) -> None:
        for name, value in changes.items():
            setattr(draft, name, value)
    return apply


FAULTS: dict[int, tuple[int, Fault | None]] = {
    # check number in docs/protocol.md section 4.1: (the code a fault of that check alone gets, the fault)
    1: (103, _set(oversize=True)),
    2: (102, _set(non_canonical=True)),
    3: (105, _set(rename_body=True)),
    4: (203, _set(drop_sig=True)),
    5: (105, _set(extra_envelope=True)),
    6: (105, _set(extra_body=True)),
    7: (105, _set(tx_type="Identity.enrol")),
    8: (105, _set(version=0)),
    9: (105, _set(nonce=0)),
    10: (105, _set(payload=[])),
    11: (201, _set(chain_id="careledger-other")),
    12: (204, _set(signer_upper=True)),
    13: (202, _set(sig_text="zz" * 64)),
    14: (104, _set(tx_type="identity.teleport")),
    15: (105, _set(payload={"org": "hospital", "roles": ["nurse"]})),
    16: (202, _set(flip=True)),
    17: (303, None),  # a node's mempool: tests/engines
    18: (302, _set(nonce_ahead=True)),
    19: (204, _set(signer=STRANGER)),
    20: (205, _set(signer=REVOKED)),
    21: (206, _set(signer=CONSORTIUM.admin("clinic"))),
    22: (304, None),  # a node's mempool: tests/node
}


def documented_checks() -> list[tuple[int, str]]:
    """(number, refusal cell) of each row of the table in section 4.1, in document order."""
    section = PROTOCOL_MD.split("### 4.1 ", 1)[1].split("\n### ", 1)[0]
    return [(int(n), refusal) for n, refusal in re.findall(r"^\| (\d+) \| .*? \| (.*?) \|\s*$", section, re.MULTILINE)]


def outcome(*numbers: int) -> int:
    """The code a transaction with the faults of these checks gets (0 when admitted)."""
    draft = Draft(signer=CONSORTIUM.admin("hospital"))
    for number in sorted(numbers, reverse=True):  # the earliest check's change is made last, so it wins
        fault = FAULTS[number][1]
        assert fault is not None
        fault(draft)
    try:
        LEDGER.admit(draft.render())
    except LedgerError as exc:
        return int(exc.code)
    return 0


def test_the_document_lists_the_checks_in_this_order() -> None:
    rows = documented_checks()
    assert [n for n, _ in rows] == list(range(1, len(FAULTS) + 1))
    for number, refusal in rows:
        assert f"{FAULTS[number][0]}" in refusal, f"check {number}: the document says {refusal!r}"


def test_a_transaction_without_faults_is_admitted() -> None:
    assert outcome() == 0


@pytest.mark.parametrize("number", [n for n, (_, fault) in FAULTS.items() if fault is not None])
def test_each_fault_alone_gets_its_checks_code(number: int) -> None:
    assert outcome(number) == FAULTS[number][0]


PAIRS = list(itertools.combinations([n for n, (_, fault) in FAULTS.items() if fault is not None], 2))


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_with_two_faults_the_earlier_check_answers(first: int, second: int) -> None:
    assert outcome(first, second) == FAULTS[first][0]


def test_the_pairs_are_informative() -> None:
    """Most pairs have different codes, so the order is really tested (not only 105 against 105)."""
    differing = [(a, b) for a, b in PAIRS if FAULTS[a][0] != FAULTS[b][0]]
    assert len(differing) >= 120 and (14, 16) in differing and (15, 16) in differing and (16, 19) in differing
