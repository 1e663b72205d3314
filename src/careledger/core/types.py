"""Shared constrained types for payloads and genesis."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

PublicKeyHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
OrgId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,62}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=120)]
Handle = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._@-]{1,64}$")]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[A-Za-z0-9.\-:\[\]]+(/[^\s]*)?$", max_length=200)]
Word = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{1,39}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
PositiveInt = Annotated[int, Field(ge=1, le=2**53 - 1)]
NonNegativeInt = Annotated[int, Field(ge=0, le=2**53 - 1)]
OrgRole = Literal["hospital", "clinic", "pharmacy", "manufacturer", "distributor", "insurer", "research",
                  "regulator"]
