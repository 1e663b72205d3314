"""The genesis file: the consortium's founding declaration, validated strictly.

A genesis document names the chain, the crypto suite, the organisations (with their roles, admin
keys and API endpoints), the validators and the chain parameters. Its hash (SHA-256 of its
canonical encoding) is the ``prev_hash`` of block 1 and seeds the app hash. Every problem is a
:class:`GenesisError` (INVALID_GENESIS) naming the offending field.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from careledger.core import codec
from careledger.core.errors import EncodingError, GenesisError
from careledger.core.tx import DEFAULT_MAX_TX_BYTES
from careledger.core.types import Name, NonNegativeInt, OrgId, OrgRole, PublicKeyHex, Url

ORG_ROLES = ("hospital", "clinic", "pharmacy", "manufacturer", "distributor", "insurer", "research", "regulator")
ChainId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,49}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Params(_Strict):
    max_tx_bytes: Annotated[int, Field(ge=1024, le=4_194_304)] = DEFAULT_MAX_TX_BYTES
    max_block_txs: Annotated[int, Field(ge=1, le=100_000)] = 5_000
    proposal_ttl_blocks: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    max_roles: Annotated[int, Field(ge=1, le=32)] = 8


class OrganisationDecl(_Strict):
    id: OrgId
    name: Name
    roles: Annotated[list[OrgRole], Field(min_length=1, max_length=8)]
    admins: Annotated[list[PublicKeyHex], Field(min_length=1, max_length=16)]
    api: Url | None = None
    gs1_company_prefixes: Annotated[list[Annotated[str, StringConstraints(pattern=r"^[0-9]{6,12}$")]],
                                    Field(max_length=32)] = []

    @model_validator(mode="after")
    def _unique(self) -> OrganisationDecl:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError("roles repeat")
        if len(set(self.admins)) != len(self.admins):
            raise ValueError("admin keys repeat")
        prefixes = self.gs1_company_prefixes
        for i, a in enumerate(prefixes):
            for b in prefixes[i + 1:]:
                if a.startswith(b) or b.startswith(a):
                    raise ValueError(f"GS1 Company Prefixes {a} and {b} overlap")
        return self


class ValidatorDecl(_Strict):
    org: OrgId
    pub_key: PublicKeyHex
    power: Annotated[int, Field(ge=1, le=1_000_000)]


class Genesis(_Strict):
    chain_id: ChainId
    genesis_time_ms: NonNegativeInt
    crypto_suite: Literal["ed25519-sha256"] = "ed25519-sha256"
    params: Params = Params()
    organisations: Annotated[list[OrganisationDecl], Field(min_length=1, max_length=1000)]
    validators: Annotated[list[ValidatorDecl], Field(min_length=1, max_length=150)]

    @model_validator(mode="after")
    def _consistent(self) -> Genesis:
        ids = [o.id for o in self.organisations]
        if len(set(ids)) != len(ids):
            raise ValueError("organisation ids repeat")
        held = sorted((p, o.id) for o in self.organisations for p in o.gs1_company_prefixes)
        for (a, org_a), (b, org_b) in itertools.pairwise(held):
            if b.startswith(a):  # sorted, so an overlapping pair is adjacent
                raise ValueError(f"GS1 Company Prefix {b} of {org_b!r} overlaps {a} of {org_a!r}")
        admins = [a for o in self.organisations for a in o.admins]
        if len(set(admins)) != len(admins):
            raise ValueError("an admin key is declared by two organisations")
        for v in self.validators:
            if v.org not in ids:
                raise ValueError(f"validator {v.pub_key[:12]}… names unknown organisation {v.org!r}")
        keys = [v.pub_key for v in self.validators]
        if len(set(keys)) != len(keys):
            raise ValueError("validator keys repeat")
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def encode(self) -> bytes:
        return codec.encode(self.to_json())

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


def parse_genesis(doc: Any) -> Genesis:
    """Validate a decoded genesis document; raises GenesisError naming the first problem."""
    if not isinstance(doc, dict):
        raise GenesisError("genesis must be a JSON object")
    try:
        return Genesis.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "genesis"
        raise GenesisError(f"invalid genesis: {where}: {first.get('msg', 'invalid')}") from None


def decode_genesis(data: bytes) -> Genesis:
    """A genesis document from the bytes of a (hand-written, not necessarily canonical) JSON file."""
    try:
        doc = codec.decode_lenient(data)
    except EncodingError as exc:
        raise GenesisError(f"genesis file is not valid JSON: {exc.message}") from exc
    return parse_genesis(doc)
