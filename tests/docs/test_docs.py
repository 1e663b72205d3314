"""The documentation is checked against the code, so it cannot drift unnoticed.

* ``docs/protocol.md``: every fenced block tagged ``json vector`` is recomputed here from its own
  inputs with the real code (codec, crypto, tx, merkle, state, block, executor, proofs); the blocks
  copied from ``tests/vectors/protocol.json`` must equal that file; the error-code table must list
  exactly the members of :class:`careledger.core.errors.Code`; section 16 must give every field of
  every payload model with its default; section 11 must list every state entry any vector's
  transactions write, with the fields of its value, and section 16 which type writes which
  (tests/docs/test_check_order.py holds the code to section 4.1's check order).
* ``docs/cli.md``: every registered ``careledger`` command has a section naming each of its options
  and arguments, and every section names a real command; every command's help gives ``--json`` and
  the exit-status table.
* README and docs: relative links point at files that exist; the quick start is the two commands.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import typer.main
from pydantic import BaseModel

from careledger.chain.executor import BlockExecution, Chain, check_stateless, genesis_app_hash, genesis_state
from careledger.chain.registry import default_registry
from careledger.cli.main import app as cli_app
from careledger.contracts.identity import compute_pseudonym
from careledger.core import codec, merkle
from careledger.core.block import BlockEnv, Header, Receipt
from careledger.core.crypto import ED25519_SHA256, SigningKey, signing_message
from careledger.core.errors import Code, InvalidTx, LedgerError
from careledger.core.genesis import parse_genesis
from careledger.core.proofs import build_proof, verify_proof
from careledger.core.state import MemoryState, changes_root, compute_app_hash
from careledger.core.tx import decode_tx, sign_tx, signed_body, tx_hash
from careledger.vault import requests

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PROTOCOL_MD = (DOCS / "protocol.md").read_text(encoding="utf-8")
CLI_MD = (DOCS / "cli.md").read_text(encoding="utf-8")
PROTOCOL_JSON: dict[str, Any] = json.loads((ROOT / "tests" / "vectors" / "protocol.json").read_text(encoding="utf-8"))

VECTOR_BLOCK = re.compile(r"^```json vector\n(.*?)^```", re.MULTILINE | re.DOTALL)
# vector kind -> the protocol.json section it must reproduce verbatim (None: computed for the docs only)
KINDS: dict[str, str | None] = {
    "canonical_encoding": "canonical_encoding", "ed25519": "ed25519", "signing_domains": "signing_domains",
    "tx": "tx", "merkle": "merkle", "app_hash": "app_hash", "block_header": "block_header",
    "genesis": None, "block": None, "proof": None, "pseudonym": None, "signed_request": None,
}


def _doc_vectors() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for text in VECTOR_BLOCK.findall(PROTOCOL_MD):
        doc = json.loads(text)
        kind = doc.pop("vector")
        assert kind not in found, f"vector {kind!r} appears twice in docs/protocol.md"
        found[kind] = doc
    return found


VECTORS = _doc_vectors()


def h(data: bytes) -> str:
    return data.hex()


def test_every_vector_kind_is_in_protocol_md() -> None:
    assert set(VECTORS) == set(KINDS)


@pytest.mark.parametrize("kind", [k for k, section in KINDS.items() if section is not None])
def test_vectors_are_copied_verbatim_from_protocol_json(kind: str) -> None:
    doc = VECTORS[kind]
    section = PROTOCOL_JSON[KINDS[kind]]  # type: ignore[index]
    if kind == "ed25519":
        assert doc["cases"] == section
    elif kind == "signing_domains":
        assert doc["prefixes"] == section
        assert doc["chain_id"] == PROTOCOL_JSON["tx"]["chain_id"]
    else:
        assert doc == section


def test_canonical_encoding_vector() -> None:
    v = VECTORS["canonical_encoding"]
    out = codec.encode(json.loads(v["input_text"]))
    assert h(out) == v["canonical_hex"]
    assert out.decode("utf-8") == v["canonical_text"]
    assert hashlib.sha256(out).hexdigest() == v["sha256"]
    assert codec.encode(codec.decode(out)) == out


def test_ed25519_vector() -> None:
    for case in VECTORS["ed25519"]["cases"]:
        seed = bytes.fromhex(case["seed"])
        assert SigningKey(seed).public_hex == case["public_key"]
        if "signature" in case:  # a raw RFC 8032 signature, no domain
            raw = nacl.signing.SigningKey(seed).sign(bytes.fromhex(case["message_hex"])).signature
            assert h(raw) == case["signature"]


def test_signing_domains_vector() -> None:
    v = VECTORS["signing_domains"]
    message = bytes.fromhex(v["message_hex"])
    computed = {d: h(signing_message(d, v["chain_id"], message)) for d in v["prefixes"]}
    assert computed == v["prefixes"]
    assert set(v["prefixes"]) == {"tx", "block", "request", "proof"}


def test_tx_vector() -> None:
    v = VECTORS["tx"]
    key = SigningKey(bytes.fromhex(v["signer_seed"]))
    body = json.loads(v["body_text"])
    body_bytes = codec.encode(body)
    assert body_bytes.decode() == v["body_text"]
    assert h(signing_message("tx", v["chain_id"], body_bytes)) == v["sign_bytes_hex"]
    wire = sign_tx(key, v["chain_id"], body["type"], body["version"], body["nonce"], body["payload"])
    assert wire.decode() == v["wire_text"]
    assert json.loads(wire)["sig"] == v["signature"]
    assert h(tx_hash(wire)) == v["hash"]
    assert signed_body(wire) == body_bytes
    assert wire == b'{"body":' + body_bytes + b',"sig":"' + v["signature"].encode() + b'"}'
    tx = decode_tx(wire, v["chain_id"], ED25519_SHA256)
    assert tx.hash_hex == v["hash"] and tx.signer_hex == key.public_hex


def test_signed_request_vector() -> None:
    """Section 4.3 byte for byte: the signed bytes, the message, the signature, the header, and the
    node's verifier accepts exactly this request (and not another body or target)."""
    v = VECTORS["signed_request"]
    key = SigningKey(bytes.fromhex(v["requester_seed"]))
    body = v["body_text"].encode()
    digest = hashlib.sha256(body).hexdigest()
    by_hand = ('{"body":"' + digest + '","method":"' + v["method"] + '","nonce":"' + v["nonce"] + '","requester":"'
               + key.public_hex + '","target":"' + v["target"] + '","time_ms":' + str(v["time_ms"]) + "}")
    signed = requests.signed_request(v["method"], v["target"], body, key.public_hex, v["time_ms"], v["nonce"])
    assert signed.decode() == by_hand == v["signed_text"]
    assert h(signing_message("request", v["chain_id"], signed)) == v["sign_bytes_hex"]
    assert h(key.sign("request", v["chain_id"], signed)) == v["signature"]
    assert hashlib.sha256(signed).hexdigest() == v["request_hash"]
    header = requests.authorization(key, v["chain_id"], v["method"], v["target"], body, now_ms=v["time_ms"],
                                    nonce=v["nonce"])
    assert header == v["authorization"]
    assert header == (f"CareLedger-Request key={key.public_hex}, time={v['time_ms']}, nonce={v['nonce']}, "
                      f"sig={v['signature']}")
    request = requests.SignedRequest(v["method"], v["target"], body, header)
    verified = requests.verify_request(request, v["chain_id"], ED25519_SHA256, v["time_ms"],
                                       kinds=requests.QUERY_KINDS)
    assert (verified.requester, verified.hash, verified.body.kind) == (key.public_hex, v["request_hash"], "view")
    quoted = 'careledger-request sig="' + v["signature"] + '",nonce=' + v["nonce"] + ", key=" + key.public_hex + \
        ", time=" + str(v["time_ms"])  # any order, quotes, any case of the scheme
    assert requests.verify_request(requests.SignedRequest(v["method"], v["target"], body, quoted), v["chain_id"],
                                   ED25519_SHA256, v["time_ms"], kinds=requests.QUERY_KINDS).hash == v["request_hash"]
    for other in (requests.SignedRequest("GET", v["target"], body, header),
                  requests.SignedRequest(v["method"], v["target"] + "?", body, header),
                  requests.SignedRequest(v["method"], v["target"], body + b" ", header)):
        with pytest.raises(LedgerError) as info:
            requests.verify_request(other, v["chain_id"], ED25519_SHA256, v["time_ms"], kinds=requests.QUERY_KINDS)
        assert info.value.code == Code.BAD_SIGNATURE


def test_merkle_vector() -> None:
    v = VECTORS["merkle"]
    leaves = [bytes.fromhex(x) for x in v["leaves_hex"]]
    hashed = [merkle.leaf_hash(x) for x in leaves]
    assert [h(x) for x in hashed] == v["leaf_hashes"]
    assert h(merkle.merkle_root(leaves)) == v["root"]
    assert h(merkle.merkle_root([])) == v["empty_root"] == hashlib.sha256(b"").hexdigest()
    for case in v["audit_paths"]:
        path = merkle.inclusion_proof(hashed, case["index"])
        assert [h(p) for p in path] == case["path"]
        root = merkle.root_from_proof(leaves[case["index"]], case["index"], len(leaves), path)
        assert h(root) == v["root"]


def test_app_hash_vector() -> None:
    v = VECTORS["app_hash"]
    changes = {k: (None if val is None else val.encode()) for k, val in v["changes"].items()}
    leaves = []
    for key in sorted(changes, key=str.encode):  # the leaf encoding exactly as docs/protocol.md states it
        kb, val = key.encode(), changes[key]
        leaves.append(len(kb).to_bytes(4, "big") + kb + (b"\x00" if val is None else b"\x01" + val))
    assert [h(x) for x in leaves] == v["leaves_hex"]
    assert h(merkle.merkle_root(leaves)) == h(changes_root(changes)) == v["changes_root"]
    previous = bytes.fromhex(v["previous"])
    assert h(compute_app_hash(v["height"], previous, changes)) == v["app_hash"]
    by_hand = hashlib.sha256(b"CareLedger/app/v1\x00" + v["height"].to_bytes(8, "big") + previous
                             + bytes.fromhex(v["changes_root"])).hexdigest()
    assert by_hand == v["app_hash"]


def test_block_header_vector() -> None:
    v = VECTORS["block_header"]
    header = Header.from_json(json.loads(v["header_text"]))
    assert header.encode().decode() == v["header_text"]
    assert h(header.hash) == v["hash"] == hashlib.sha256(v["header_text"].encode()).hexdigest()
    key = SigningKey(bytes.fromhex(v["proposer_seed"]))
    assert key.public_hex == header.proposer
    assert h(key.sign("block", header.chain_id, header.hash)) == v["signature"]
    ED25519_SHA256.verify(key.public_key, "block", header.chain_id, header.hash, bytes.fromhex(v["signature"]))


def test_genesis_vector() -> None:
    v = VECTORS["genesis"]
    genesis = parse_genesis(v["input"])
    assert genesis.encode().decode() == v["canonical_text"]
    assert h(genesis.hash) == v["hash"] == hashlib.sha256(v["canonical_text"].encode()).hexdigest()
    changes = genesis_state(genesis)
    assert {k: val.decode() for k, val in changes.items() if val is not None} == v["state"]
    assert len(changes) == len(v["state"])
    assert h(changes_root(changes)) == v["changes_root"]
    assert h(genesis_app_hash(genesis, changes)) == v["app_hash"]


def _execute_block_vector() -> tuple[Header, bytes, list[bytes], list[Receipt], dict[str, bytes | None]]:
    g, v = VECTORS["genesis"], VECTORS["block"]
    genesis = parse_genesis(g["input"])
    chain = Chain(genesis, default_registry())
    state = MemoryState()
    changes = genesis_state(genesis)
    state.apply(changes)
    prev_app_hash = genesis_app_hash(genesis, changes)
    assert h(prev_app_hash) == v["prev_app_hash"] and h(genesis.hash) == v["prev_hash"]
    proposer = SigningKey(bytes.fromhex(v["proposer_seed"]))
    env = BlockEnv(genesis.chain_id, v["height"], v["time_ms"], proposer.public_hex)
    run = BlockExecution(chain, state, env, prev_app_hash)
    raws = [t.encode("utf-8") for t in v["txs_text"]]
    for raw in raws:
        run.add(check_stateless(chain, raw))  # signatures verified: the wire texts are genuinely signed
    result = run.finish()
    header = result.header(v["prev_hash"], proposer.public_hex)
    signature = proposer.sign("block", genesis.chain_id, header.hash)
    return header, signature, result.txs, result.receipts, result.changes


def test_block_vector() -> None:
    v = VECTORS["block"]
    header, signature, txs, receipts, changes = _execute_block_vector()
    assert [h(tx_hash(raw)) for raw in txs] == v["tx_hashes"]
    assert [r.encode().decode() for r in receipts] == v["receipts_text"]
    assert {k: (None if val is None else val.decode()) for k, val in changes.items()} == v["changes"]
    assert h(merkle.merkle_root(txs)) == header.txs_root == v["txs_root"]
    assert h(merkle.merkle_root([r.encode() for r in receipts])) == header.receipts_root == v["receipts_root"]
    assert header.app_hash == v["app_hash"]
    assert h(compute_app_hash(v["height"], bytes.fromhex(v["prev_app_hash"]), changes)) == v["app_hash"]
    assert header.encode().decode() == v["header_text"]
    assert h(header.hash) == v["hash"]
    assert h(signature) == v["signature"]
    # the failed transaction is included with its code, and its only write is the nonce
    assert [json.loads(r)["code"] for r in v["receipts_text"]] == [0, 0, int(Code.ROLE_NOT_ALLOWED)]
    assert v["txs_text"][0] == VECTORS["tx"]["wire_text"]


def test_proof_vector() -> None:
    v = VECTORS["proof"]
    bundle = v["bundle"]
    header, signature, txs, receipts, _ = _execute_block_vector()
    assert build_proof(header, signature, txs, receipts, bundle["index"]) == bundle
    receipt = verify_proof(bundle, v["chain_id"], v["validators"])
    assert receipt.encode().decode() == VECTORS["block"]["receipts_text"][bundle["index"]]
    # the written algorithm, step by step, from the bundle alone
    raw = bytes.fromhex(bundle["tx"])
    tx_root = merkle.root_from_proof(raw, bundle["index"], bundle["header"]["tx_count"],
                                     [bytes.fromhex(p) for p in bundle["tx_path"]])
    assert h(tx_root) == bundle["header"]["txs_root"]
    receipt_path = [bytes.fromhex(p) for p in bundle["receipt_path"]]
    receipt_root = merkle.root_from_proof(codec.encode(bundle["receipt"]), bundle["index"],
                                          bundle["header"]["tx_count"], receipt_path)
    assert h(receipt_root) == bundle["header"]["receipts_root"]
    assert bundle["receipt"]["tx"] == hashlib.sha256(raw).hexdigest()


def test_pseudonym_vector() -> None:
    for case in VECTORS["pseudonym"]["cases"]:
        assert compute_pseudonym(case["public_key"]) == case["pseudonym"]
        expected = "pt-" + hashlib.sha256(bytes.fromhex(case["public_key"])).digest()[:16].hex()
        assert case["pseudonym"] == expected


def test_protocol_md_code_table_lists_every_code() -> None:
    rows = re.findall(r"^\| (\d+) \| `([A-Z0-9_]+)` \|", PROTOCOL_MD, re.MULTILINE)
    documented = [(int(n), name) for n, name in rows]
    assert len(documented) == len(set(documented)), "a code is listed twice"
    actual = {(int(c), c.name) for c in Code}
    missing, stale = sorted(actual - set(documented)), sorted(set(documented) - actual)
    assert not missing, f"docs/protocol.md section 14 lacks these codes: {missing}"
    assert not stale, f"docs/protocol.md section 14 lists codes that do not exist: {stale}"


def test_protocol_md_lists_every_registered_transaction_type() -> None:
    rows = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| (\d+) \| [a-z_]+ \|", PROTOCOL_MD, re.MULTILINE))
    documented = {(t, int(v)) for t, v in rows}
    registered = set(default_registry().kinds())
    assert not registered - documented, f"docs/protocol.md section 4.2 lacks {sorted(registered - documented)}"
    assert not documented - registered, f"docs/protocol.md section 4.2 lists unknown {sorted(documented - registered)}"


# -- CLI reference -----------------------------------------------------------------------------------

def _leaf_commands() -> dict[str, Any]:
    """Every runnable command, by its full name (``careledger identity enrol``)."""
    out: dict[str, Any] = {}

    def walk(cmd: Any, path: str) -> None:
        if hasattr(cmd, "commands"):  # a group (typer bundles its own click, so no isinstance checks)
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}")
        else:
            out[path] = cmd

    walk(typer.main.get_command(cli_app), "careledger")
    return out


def _cli_sections() -> dict[str, str]:
    """docs/cli.md split at headings of the form ``### `careledger ...```."""
    parts = re.split(r"^### `(careledger[a-z -]*)`\s*$", CLI_MD, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


CLI_SECTIONS = _cli_sections()
LEAVES = _leaf_commands()


def test_cli_has_commands() -> None:
    assert {"careledger init", "careledger node start", "careledger verify", "careledger demo"} <= set(LEAVES)


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_cli_command_is_documented_with_its_options(name: str) -> None:
    assert name in CLI_SECTIONS, f"docs/cli.md has no section '### `{name}`'"
    section = CLI_SECTIONS[name]
    for param in LEAVES[name].params:
        if param.opts[0].startswith("-"):  # an option
            for opt in [*param.opts, *param.secondary_opts]:
                if opt != "--help":
                    assert f"`{opt}" in section, f"{name}: option {opt} is not documented"
        else:
            assert f"`{param.name.upper()}`" in section, f"{name}: argument {param.name} is not documented"


def test_every_cli_section_names_a_real_command() -> None:
    assert set(CLI_SECTIONS) == set(LEAVES)


def test_every_command_help_gives_the_exit_status_and_json() -> None:
    """Every command, group included, documents ``--json`` and the exit-status table in its --help."""
    from careledger.cli.main import build_command

    seen = 0

    def walk(cmd: Any) -> None:
        nonlocal seen
        seen += 1
        assert cmd.epilog and "Exit status: 0 success" in cmd.epilog and "--json" in cmd.epilog, cmd.name
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(build_command())
    assert seen > len(LEAVES)


def test_cli_md_documents_every_exit_status() -> None:
    from careledger.cli.common import EXIT_STATUS

    conventions = CLI_MD[CLI_MD.index("## Conventions"):CLI_MD.index("## Node")]
    for status in EXIT_STATUS:
        assert f"  * {status}:" in conventions, f"exit status {status} is not in docs/cli.md's conventions"


# -- README and links -----------------------------------------------------------------------------------

MY_DOCS = [ROOT / "README.md", DOCS / "architecture.md", DOCS / "protocol.md", DOCS / "cli.md"]


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown text (lower case, punctuation dropped, - for spaces)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)  # no headings in code blocks
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("path", MY_DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        name, _, fragment = target.partition("#")
        file = (path.parent / name).resolve() if name else path
        assert file.exists(), f"{path.name} links to missing {target}"
        if fragment and file.suffix == ".md":
            assert fragment in _anchors(file.read_text(encoding="utf-8")), f"{path.name}: no heading for {target}"


def test_readme_quick_start_is_the_two_make_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", quick, re.DOTALL)
    assert [line for b in blocks for line in b.splitlines() if line.strip()] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)


# -- section 16: every payload field, and section 11: every state entry -----------------------------

def _section(number: int) -> str:
    """The text of ``## <number>.`` up to the next top-level section."""
    return PROTOCOL_MD.split(f"\n## {number}. ", 1)[1].split("\n## ", 1)[0]


def _type_sections() -> dict[str, str]:
    """Section 16's subsections by transaction type."""
    parts = re.split(r"^### 16\.\d+ `([a-z_]+\.[a-z_]+)`\s*$", _section(16), flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


TYPE_SECTIONS = _type_sections()
Row = tuple[str, bool, Any]  # (field path, required, default: None for a required field)
_NO_DEFAULT = object()


def _submodels(annotation: Any) -> tuple[list[type[BaseModel]], bool]:
    """The models inside a field's annotation (through Annotated, unions and lists), and whether in a list."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation], False
    if origin is typing.Annotated:
        return _submodels(args[0])
    if origin in (list, tuple):
        return _submodels(args[0])[0] if args else [], True
    if origin in (typing.Union, types.UnionType):
        found: list[type[BaseModel]] = []
        in_list = False
        for arg in args:
            models, listed = _submodels(arg)
            found += models
            in_list = in_list or listed
        return found, in_list
    return [], False


def default_json(default: Any) -> str:
    """A field's default as JSON text; a nested model's default as the JSON object it stands for."""
    if isinstance(default, BaseModel):
        default = default.model_dump(mode="json")
    return json.dumps(default, sort_keys=True)


def model_rows(model: type[BaseModel], prefix: str = "") -> set[Row]:
    """Every field of a payload model, nested models (and each variant of a union) included:
    ``a.b`` for a field of an object, ``a[].b`` for a field of the objects of an array."""
    rows: set[Row] = set()
    for name, info in model.model_fields.items():
        path = prefix + name
        rows.add((path, info.is_required(), None if info.is_required() else default_json(info.default)))
        models, listed = _submodels(info.annotation)
        for sub in models:
            rows |= model_rows(sub, path + ("[]." if listed else "."))
    return rows


def documented_rows(text: str) -> set[Row]:
    rows: set[Row] = set()
    for path, required, default in re.findall(r"^\| `([^`]+)` \| [^|]+ \| (yes|no) \| ([^|]+?) \|", text, re.MULTILINE):
        if required == "yes":
            assert default == "—", f"{path}: a required field has no default, the document says {default}"
            rows.add((path, True, None))
        else:
            assert default.startswith("`") and default.endswith("`"), f"{path}: default {default!r} is not `json`"
            rows.add((path, False, json.dumps(json.loads(default[1:-1]), sort_keys=True)))
    return rows


def test_section_16_has_one_subsection_per_registered_type() -> None:
    assert sorted(TYPE_SECTIONS) == sorted(t for t, _ in default_registry().kinds())


def documented_rows_of(tx_type: str) -> set[Row]:
    """The rows of a type's table, plus those it takes from another type's ("The `x.*` fields are those
    of `other.type`")."""
    text = TYPE_SECTIONS[tx_type]
    rows = documented_rows(text)
    for prefix, other in re.findall(r"The `([a-z_]+)\.\*` fields are those of `([a-z_]+\.[a-z_]+)`", text):
        rows |= {row for row in documented_rows(TYPE_SECTIONS[other]) if row[0].startswith(prefix + ".")}
    return rows


@pytest.mark.parametrize("handler", default_registry().handlers(), ids=lambda h: h.type)
def test_every_payload_field_is_documented_with_its_default(handler: Any) -> None:
    expected = model_rows(handler.payload)
    documented = documented_rows_of(handler.type)
    missing, stale = sorted(expected - documented), sorted(documented - expected)
    assert not missing, f"docs/protocol.md section 16 ({handler.type}) lacks or misstates {missing}"
    assert not stale, f"docs/protocol.md section 16 ({handler.type}) lists {stale}, which the model does not have"
    if not expected:
        assert "empty object" in TYPE_SECTIONS[handler.type]


def test_the_field_walk_finds_nested_and_union_fields() -> None:
    """The comparison is not vacuous: nested objects, arrays of objects and union variants are walked."""
    handlers = {h.type: h for h in default_registry().handlers()}
    grant = model_rows(handlers["consent.grant"].payload)
    assert ("period.end_ms", False, "null") in grant and ("provision", False, '"permit"') in grant
    assert ("anchors[].author", False, "null") in model_rows(handlers["records.anchor"].payload)
    propose = {path for path, _, _ in model_rows(handlers["governance.propose"].payload)}
    assert {"action.organisation.gs1_company_prefixes", "action.pub_key", "action.roles"} <= propose
    cohort: dict[str, object] = {"birth_year_max": None, "birth_year_min": None, "conditions_any": [], "sex": []}
    study = model_rows(handlers["research.register_study"].payload)
    assert ("request.cohort", False, json.dumps(cohort, sort_keys=True)) in study  # a model as a default
    assert ("request.cohort.sex", False, "[]") in study


@dataclass(frozen=True)
class StateEntry:
    pattern: str
    regex: re.Pattern[str]
    required: frozenset[str] | None  # None: the value is not an object (an integer)
    optional: frozenset[str]


def _regex_of(pattern: str) -> re.Pattern[str]:
    """``identity/member/<org>/<pub>`` -> a regex; the last placeholder of a key may contain ``/``."""
    parts = re.split(r"(<[a-z_]+>)", pattern)
    last = max(i for i, part in enumerate(parts) if part.startswith("<")) if "<" in pattern else -1
    return re.compile("".join(("[^/]+" if i != last else ".+") if part.startswith("<") else re.escape(part)
                              for i, part in enumerate(parts)))


def state_entries() -> list[StateEntry]:
    table = _section(11).split("<!-- state entries:", 1)[1].split("\n\n", 1)[0]
    entries = []
    for pattern, value in re.findall(r"^\| `([^`]+)` \| (`\{[^`]*\}`|integer) \|", table, re.MULTILINE):
        if value == "integer":
            entries.append(StateEntry(pattern, _regex_of(pattern), None, frozenset()))
            continue
        fields = [f.strip() for f in value.strip("`{}").split(",")]
        entries.append(StateEntry(pattern, _regex_of(pattern), frozenset(f for f in fields if not f.endswith("?")),
                                  frozenset(f[:-1] for f in fields if f.endswith("?"))))
    return entries


STATE_ENTRIES = state_entries()
VECTOR_FILES = sorted(p for p in (ROOT / "tests" / "vectors").rglob("*.json") if p.name != "protocol.json")


def entry_of(key: str) -> StateEntry | None:
    matches = [e for e in STATE_ENTRIES if e.regex.fullmatch(key)]
    assert len(matches) <= 1, f"{key} matches {[m.pattern for m in matches]}"
    return matches[0] if matches else None


@functools.cache
def vector_writes() -> list[tuple[str, int, str, bytes | None]]:
    """(transaction type or ``<genesis>``, its receipt code, key, value written) for every write that
    genesis and every included transaction of every vector make, replayed in process from the files."""
    writes: list[tuple[str, int, str, bytes | None]] = []
    for path in VECTOR_FILES:
        vector = json.loads(path.read_text(encoding="utf-8"))
        genesis = parse_genesis(vector["pre"]["genesis"])
        chain = Chain(genesis, default_registry())
        state = MemoryState()
        changes = genesis_state(genesis)
        writes += [("<genesis>", 0, k, v) for k, v in changes.items()]
        state.apply(changes)
        app_hash = genesis_app_hash(genesis, changes)
        for block in [*vector["pre"]["blocks"], vector["block"]]:
            env = BlockEnv(genesis.chain_id, block["height"], block["time_ms"], block["proposer"])
            run = BlockExecution(chain, state, env, app_hash)
            for text in block["txs"]:
                before = dict(run.state.writes)
                try:
                    receipt = run.add(check_stateless(chain, text.encode()))
                except InvalidTx:
                    continue
                tx_type = json.loads(text)["body"]["type"]
                writes += [(tx_type, receipt.code, k, v) for k, v in run.state.writes.items() if before.get(k) is not v]
            result = run.finish()
            state.apply(result.changes)
            app_hash = result.app_hash
    return writes



def test_every_key_written_is_documented_with_its_value_fields() -> None:
    problems = set()
    for tx_type, _, key, value in vector_writes():
        entry = entry_of(key)
        if entry is None:
            problems.add(f"{key} ({tx_type}) matches no row of section 11")
            continue
        if value is None:
            continue  # a deletion
        decoded = codec.decode(value)
        if entry.required is None:
            if type(decoded) is not int:
                problems.add(f"{entry.pattern}: the document says integer, {tx_type} wrote {decoded!r}")
        elif type(decoded) is not dict or not entry.required <= decoded.keys() <= entry.required | entry.optional:
            fields = sorted(decoded) if type(decoded) is dict else decoded
            problems.add(f"{entry.pattern}: {tx_type} wrote fields {fields}")
    assert not problems, sorted(problems)


def test_every_documented_state_entry_is_written_by_some_vector() -> None:
    written = {e.pattern for _, _, key, _ in vector_writes() if (e := entry_of(key)) is not None}
    assert sorted(e.pattern for e in STATE_ENTRIES if e.pattern not in written) == []
    assert len(STATE_ENTRIES) >= 23


def test_each_type_writes_only_what_its_section_says() -> None:
    """Section 16's *Writes* of a type names every state entry its successful transactions write (besides
    the nonce); a failed transaction writes only its nonce."""
    patterns = {e.pattern for e in STATE_ENTRIES}
    declared: dict[str, set[str]] = {}
    for tx_type, text in TYPE_SECTIONS.items():
        bullet = text.split("* **Writes**", 1)[1].split("\n* ", 1)[0]
        names = {n for n in re.findall(r"`([^`\s:]+/[^`\s:]*)`", bullet)}
        assert names <= patterns, f"{tx_type} names entries that section 11 lacks: {sorted(names - patterns)}"
        declared[tx_type] = names | {"nonce/<pub>"}
    problems = set()
    for tx_type, code, key, _ in vector_writes():
        entry = entry_of(key)
        if tx_type == "<genesis>" or entry is None:
            continue
        allowed = declared[tx_type] if code == 0 else {"nonce/<pub>"}
        if entry.pattern not in allowed:
            problems.add(f"{tx_type} (code {code}) wrote {entry.pattern}")
    assert not problems, sorted(problems)
    assert {t for t, code, _, _ in vector_writes() if code == 0} >= set(TYPE_SECTIONS)  # every type wrote something


def test_no_doc_promises_a_doc_that_is_coming() -> None:
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        assert "(coming)" not in path.read_text(encoding="utf-8"), f"{path.name} still says (coming)"


def test_the_tests_protocol_md_names_exist() -> None:
    for name in sorted(set(re.findall(r"`(tests/[A-Za-z0-9_./-]+\.(?:py|json))`", PROTOCOL_MD))):
        assert (ROOT / name).exists(), f"docs/protocol.md names {name}, which does not exist"
