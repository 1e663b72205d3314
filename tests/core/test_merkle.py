"""RFC 6962 Merkle roots and RFC 9162 audit paths, checked against a straightforward reference."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.core import merkle
from careledger.core.merkle import ProofError


def H(data: bytes) -> bytes:  # noqa: N802
    return hashlib.sha256(data).digest()


# -- reference implementation: RFC 6962 section 2.1, written as the RFC states it ----------------------

def ref_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return H(b"")
    if n == 1:
        return H(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return H(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [f"leaf-{i}".encode() * (i % 3 + 1) for i in range(n)]


# -- known answers -----------------------------------------------------------------------------------

def test_empty_root_is_sha256_of_nothing() -> None:
    assert merkle.merkle_root([]) == hashlib.sha256(b"").digest()
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_single_leaf_and_prefixes() -> None:
    assert merkle.leaf_hash(b"") == H(b"\x00")
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.merkle_root([b"x"]) == H(b"\x00x")
    assert merkle.node_hash(b"L", b"R") == H(b"\x01LR")
    # leaf and node hashes are domain separated: a node can never pose as a leaf
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.merkle_root([a + b]) != merkle.merkle_root([b"a", b"b"])


def test_three_leaves_by_hand() -> None:
    la, lb, lc = (H(b"\x00" + x) for x in (b"a", b"b", b"c"))
    root = H(b"\x01" + H(b"\x01" + la + lb) + lc)
    assert merkle.merkle_root([b"a", b"b", b"c"]) == root
    hashed = [la, lb, lc]
    assert merkle.inclusion_proof(hashed, 0) == [lb, lc]
    assert merkle.inclusion_proof(hashed, 1) == [la, lc]
    assert merkle.inclusion_proof(hashed, 2) == [H(b"\x01" + la + lb)]


def test_odd_leaf_is_promoted_not_duplicated() -> None:
    # Bitcoin-style duplication would make [a, b, c] and [a, b, c, c] collide; RFC 6962 does not
    assert merkle.merkle_root([b"a", b"b", b"c"]) != merkle.merkle_root([b"a", b"b", b"c", b"c"])


# -- against the reference for every size 0..70 --------------------------------------------------------

@pytest.mark.parametrize("n", range(71))
def test_root_and_every_path_match_reference(n: int) -> None:
    leaves = leaves_of(n)
    root = ref_mth(leaves)
    assert merkle.merkle_root(leaves) == root
    hashed = [merkle.leaf_hash(x) for x in leaves]
    assert merkle.root_from_leaf_hashes(hashed) == root
    for i in range(n):
        path = merkle.inclusion_proof(hashed, i)
        assert path == ref_path(i, leaves)
        assert merkle.root_from_proof(leaves[i], i, n, path) == root
        merkle.verify_inclusion(leaves[i], i, n, path, root)  # raises on failure


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 32, 33, 70])
def test_tampering_fails(n: int) -> None:
    leaves = leaves_of(n)
    hashed = [merkle.leaf_hash(x) for x in leaves]
    root = merkle.merkle_root(leaves)
    for i in range(n):
        path = merkle.inclusion_proof(hashed, i)
        # a different leaf
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaves[i] + b"!", i, n, path, root)
        # a flipped bit anywhere in the path
        for j in range(len(path)):
            bad = list(path)
            bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
            with pytest.raises(ProofError):
                merkle.verify_inclusion(leaves[i], i, n, bad, root)
        # a path that is too long or too short
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaves[i], i, n, [*path, root], root)
        if path:
            with pytest.raises(ProofError):
                merkle.verify_inclusion(leaves[i], i, n, path[:-1], root)
        # another index (where the leaf differs from the one there)
        for other in (i - 1, i + 1):
            if 0 <= other < n:
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(leaves[i], other, n, path, root)
        # a wrong tree size: the path alone does not authenticate the size (a signed header does), but
        # a size whose audit path has another length must always be refused
        for size in (n - 1, n + 1, 2 * n, n + 7):
            if size > i and len(ref_path(i, leaves_of(size))) != len(path):
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(leaves[i], i, size, path, root)
        # out-of-range index, wrong root
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaves[i], n, n, path, root)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaves[i], -1, n, path, root)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaves[i], i, n, path, H(root))


def test_wrong_size_changes_the_root() -> None:
    # in a tree of 4, leaf 2's path is [l3, node(l0, l1)]; read as a tree of 3 it hashes in another order
    leaves = leaves_of(4)
    hashed = [merkle.leaf_hash(x) for x in leaves]
    path = merkle.inclusion_proof(hashed, 2)
    root = merkle.merkle_root(leaves)
    assert merkle.root_from_proof(leaves[2], 2, 4, path) == root
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaves[2], 2, 3, path, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaves[2], 2, 3, path, merkle.merkle_root(leaves[:3]))


def test_inclusion_proof_index_out_of_range() -> None:
    hashed = [merkle.leaf_hash(b"a")]
    with pytest.raises(IndexError):
        merkle.inclusion_proof(hashed, 1)
    with pytest.raises(IndexError):
        merkle.inclusion_proof([], 0)


@settings(derandomize=True, max_examples=150, deadline=None, database=None)
@given(st.lists(st.binary(max_size=12), min_size=1, max_size=40), st.data())
def test_property_paths_verify(leaves: list[bytes], data: st.DataObject) -> None:
    n = len(leaves)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    hashed = [merkle.leaf_hash(x) for x in leaves]
    root = merkle.merkle_root(leaves)
    assert root == ref_mth(leaves)
    path = merkle.inclusion_proof(hashed, i)
    assert merkle.root_from_proof(leaves[i], i, n, path) == root
    j = data.draw(st.integers(min_value=0, max_value=n - 1))
    if leaves[j] != leaves[i]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaves[j], i, n, path, root)
