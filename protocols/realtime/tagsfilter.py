"""Centrifugo publication tags filters (`SubscribeRequest.tf`): validate and match, as centrifuge's
`internal/filter` does. A filter is a leaf `{key, cmp, val | vals}` or `{op: and|or|not, nodes}`."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

VALUE_CMPS = {"eq", "neq", "sw", "ew", "ct", "gt", "gte", "lt", "lte"}
SET_CMPS = {"in", "nin"}
KEY_CMPS = {"ex", "nex"}
MAX_DEPTH = 32


class FilterError(ValueError):
    """A filter that is not well formed."""


def validate(node: Any, depth: int = 0) -> None:
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        raise FilterError("filter node must be an object")
    op = node.get("op") or ""
    nodes = node.get("nodes") or []
    if op == "":
        cmp, val, vals = node.get("cmp") or "", node.get("val") or "", node.get("vals") or []
        if not isinstance(node.get("key") or "", str) or not isinstance(val, str) or not isinstance(vals, list):
            raise FilterError("bad leaf")
        if cmp in VALUE_CMPS:
            if not val or vals:
                raise FilterError(f"{cmp} needs val")
        elif cmp in SET_CMPS:
            if not vals or val or not all(isinstance(v, str) for v in vals):
                raise FilterError(f"{cmp} needs vals")
        elif cmp in KEY_CMPS:
            if val or vals:
                raise FilterError(f"{cmp} takes no value")
        else:
            raise FilterError(f"unknown cmp {cmp!r}")
        if not node.get("key"):
            raise FilterError("leaf needs key")
    elif op in ("and", "or", "not"):
        if not isinstance(nodes, list) or not nodes or (op == "not" and len(nodes) != 1):
            raise FilterError(f"{op} needs nodes")
        for child in nodes:
            validate(child, depth + 1)
    else:
        raise FilterError(f"unknown op {op!r}")


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def match(node: dict[str, Any], tags: dict[str, str] | None) -> bool:
    """Whether a publication with `tags` passes the (validated) filter."""
    tags = tags or {}
    op = node.get("op") or ""
    if op == "and":
        return all(match(n, tags) for n in node["nodes"])
    if op == "or":
        return any(match(n, tags) for n in node["nodes"])
    if op == "not":
        return not match(node["nodes"][0], tags)
    key, cmp, want = node.get("key") or "", node["cmp"], node.get("val") or ""
    present = key in tags
    val = tags.get(key, "")
    if cmp == "eq":
        return present and val == want
    if cmp == "neq":
        return not present or val != want
    if cmp == "in":
        return val in node["vals"]
    if cmp == "nin":
        return val not in node["vals"]
    if cmp == "ex":
        return present
    if cmp == "nex":
        return not present
    if cmp == "sw":
        return present and val.startswith(want)
    if cmp == "ew":
        return present and val.endswith(want)
    if cmp == "ct":
        return present and want in val
    if not present:
        return False
    left, right = _decimal(val), _decimal(want)
    if left is None or right is None:
        return False
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[cmp]
