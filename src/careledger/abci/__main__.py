"""``python -m careledger.abci …`` is ``careledger abci …`` (see :mod:`careledger.cli.abci`)."""

from __future__ import annotations

import sys

from careledger.cli.main import main

if __name__ == "__main__":
    main(["abci", *sys.argv[1:]])
