"""The state machine above the contracts: the executor both engines drive, and the handler registry.

``careledger.core`` knows nothing of contracts; ``careledger.contracts`` know the core and each other's
layouts; this package puts them together (genesis state, signer resolution, admission and block
execution) for the engines, ``verify`` and the test vectors.
"""
