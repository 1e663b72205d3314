"""Property test: random operation sequences on a few packs against a reference model of the rules."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from careledger.contracts.supply.layout import pack_key
from support import Ledger
from support.supply import GTIN, World, supply_consortium

ORGS = ("manufacturer", "distributor", "pharmacy", "hospital")
SERIALS = ("A", "B", "C")
STATES = ("supplied", "destroyed", "stolen", "sample", "locked")
REVERSIBLE = {"supplied", "sample", "locked"}

op_strategy = st.tuples(st.sampled_from(("ship", "receive", "decommission", "undo")), st.sampled_from(ORGS),
                        st.sampled_from(SERIALS), st.sampled_from(ORGS), st.sampled_from(STATES))


def expected_ok(model: dict[str, Any], op: tuple[str, str, str, str, str]) -> bool:
    kind, org, serial, to, state = op
    pack: dict[str, Any] = model[serial]
    if kind == "ship":
        return bool(pack["s"] == "active" and pack["h"] == org and pack["t"] is None and to != org)
    if kind == "receive":
        return bool(pack["t"] == org and pack["s"] == "active")
    if kind == "decommission":
        if pack["s"] != "active":
            return False
        if state == "stolen":
            return org in (pack["h"], pack["t"])
        if pack["h"] != org or pack["t"] is not None:
            return False
        return state != "supplied" or org in ("pharmacy", "hospital")
    return pack["s"] == state and state in REVERSIBLE and pack["by"] == org


def apply_model(model: dict[str, Any], op: tuple[str, str, str, str, str]) -> None:
    kind, org, serial, to, state = op
    pack = model[serial]
    if kind == "ship":
        pack["t"] = to
    elif kind == "receive":
        pack["h"], pack["t"] = org, None
        pack["custody"] += 1
    elif kind == "decommission":
        pack["s"], pack["by"] = state, org
    else:
        pack["s"], pack["by"] = "active", None


@seed(20261128)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op_strategy, min_size=1, max_size=25))
def test_random_operations_follow_the_rules(ops: list[tuple[str, str, str, str, str]]) -> None:
    world = World(Ledger(supply_consortium("prop")))
    world.register()
    world.commission(list(SERIALS))
    model = {s: {"s": "active", "h": "manufacturer", "t": None, "by": None, "custody": 1} for s in SERIALS}
    for op in ops:
        kind, org, serial, to, state = op
        key = world.c.admin(org)
        payload: dict[str, Any] = {"items": [f"{GTIN}/{serial}"]}
        if kind == "ship":
            payload["to"] = to
        elif kind in ("decommission", "undo"):
            payload["state"] = state
        before = world.ledger.snapshot()
        receipt = world.run(key, f"supply.{kind}", payload)
        assert (receipt.code == 0) == expected_ok(model, op), (op, receipt.code, receipt.message, model[serial])
        if receipt.code == 0:
            apply_model(model, op)
        else:
            after = world.ledger.snapshot()
            assert {k for k in after if before.get(k) != after[k]} == {f"nonce/{key.public_hex}"}
        for s in SERIALS:
            rec = world.ledger.get(pack_key(GTIN, s))
            assert (rec["s"], rec["h"], rec.get("t")) == (model[s]["s"], model[s]["h"], model[s]["t"])
            received = sum(1 for e in rec["e"] if e[0] == "receive")
            assert received + 1 == model[s]["custody"]
