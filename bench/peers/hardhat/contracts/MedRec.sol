// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title MedRec-style consent and record anchors: the Ethereum peer of CareLedger's benchmark.
/// @notice Stores what CareLedger's `consent.grant` and `records.anchor` store, in the shape of the
///         MedRec prototypes (a patient's grants to a provider over a record, and custodians' hashes
///         of record versions). Benchmark only: no access control beyond "the patient is the sender".
contract MedRec {
    struct Consent {
        address patient;     // the granting patient (the sender)
        address grantee;     // provider, organisation or study
        bytes32 recordId;    // the record (0: all of the patient's records)
        uint64 expiry;       // end of the access period, Unix seconds (0: none)
        uint64 grantedAt;    // block time
        uint64 grantedBlock; // block number
        bool active;
    }

    struct Anchor {
        address custodian;   // the sender
        bytes32 hash;        // salted commitment to the record version's content
        uint64 anchoredAt;   // block time
        uint64 anchoredBlock;
    }

    mapping(bytes32 => Consent) public consents;
    mapping(bytes32 => Anchor) public anchors;
    mapping(address => uint256) public consentCount; // the patient's index, as CareLedger keeps one per pseudonym

    event ConsentGranted(bytes32 indexed id, address indexed patient, address indexed grantee, bytes32 recordId,
                         uint64 expiry);
    event RecordAnchored(bytes32 indexed id, address indexed custodian, bytes32 hash);

    /// @notice Record a consent: `grantee` may read `recordId` of the sender until `expiry`.
    function grant(bytes32 id, address grantee, bytes32 recordId, uint64 expiry) external {
        require(consents[id].patient == address(0), "consent exists");
        require(grantee != address(0), "no grantee");
        require(expiry == 0 || expiry > block.timestamp, "expired");
        consents[id] = Consent(msg.sender, grantee, recordId, expiry, uint64(block.timestamp),
                               uint64(block.number), true);
        consentCount[msg.sender] += 1;
        emit ConsentGranted(id, msg.sender, grantee, recordId, expiry);
    }

    /// @notice Anchor a record version's commitment; an id is anchored once.
    function anchor(bytes32 id, bytes32 hash) external {
        require(anchors[id].custodian == address(0), "anchored");
        anchors[id] = Anchor(msg.sender, hash, uint64(block.timestamp), uint64(block.number));
        emit RecordAnchored(id, msg.sender, hash);
    }
}
