"""The demo's people as key files for the web console: one file per role, in the CLI's key format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from careledger.core.crypto import SigningKey
from careledger.keys import write_key

ROLES: dict[str, tuple[str, str]] = {
    # role file name: ("person" or "admin", the story's person or the organisation whose admin it is)
    "patient": ("person", "patient"),
    "clinician": ("person", "dr_osei"),
    "pharmacist": ("person", "pharmacist"),
    "regulator": ("admin", "medicines-agency"),
    "manufacturer": ("admin", "acme-pharma"),
    "claims-officer": ("person", "claims"),
    "researcher": ("person", "researcher"),
    "trial-sponsor": ("person", "trial_coordinator"),
    "operator": ("admin", "st-marys"),
}
"""Each console view's role and whose key the demo gives it."""


def write_console_keys(people: Mapping[str, SigningKey], admins: Mapping[str, SigningKey],
                       directory: Path) -> dict[str, Path]:
    """Write ``<directory>/<role>.json`` (plain, version 1: the console seals a loaded file under a
    passphrase the user chooses) for every role of :data:`ROLES` whose person the story met (``people``,
    the story's) or whose organisation has an admin (``admins``, by organisation id). Raises
    FileExistsError when a file is already there (key files are never overwritten)."""
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for role, (kind, who) in ROLES.items():
        key = (admins if kind == "admin" else people).get(who)
        if key is None:
            continue
        path = directory / f"{role}.json"
        write_key(path, key, role)
        written[role] = path
    return written
