"""The supply chain's off-ledger side: the alert index, signed reads, read models and EPCIS export.

The contract's deterministic rules live in :mod:`careledger.contracts.supply`.
"""
