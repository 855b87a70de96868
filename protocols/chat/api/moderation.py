"""Rocket.Chat v1 moderation.* calls: message and user reports, dismissals, deleting reported messages."""

from __future__ import annotations

import json
from typing import Any

from .. import store
from ..model import (
    get_str,
    iso,
    new_id,
    user_obj,
)
from .base import Tx, _reporter, _require_permission, fail, find_user, page, paged

LIVE_REPORT = "json_extract(doc, '$._hidden') = 0"


def _moderator(tx: Tx, manage: bool = False) -> None:
    _require_permission(tx, "manage-moderation-actions" if manage else "view-moderation-console")


def moderation_reports(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx)
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "reports", offset=offset, count=count,
                                  where=f"json_extract(doc, '$.msgId') = ? AND {LIVE_REPORT}", args=(get_str(p, "msgId"),))
    return paged("reports", items, offset, total)


def moderation_report_info(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx)
    report = store.doc_get(tx.conn, "reports", get_str(p, "reportId") or "")
    if report is None:
        raise fail("Report not found", "error-report-not-found")
    return {"report": report}


def moderation_reports_by_users(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    """Live message reports grouped by the reported messages' authors (one SQL query)."""
    _moderator(tx)
    offset, count = page(p)
    rows = tx.conn.execute(
        "SELECT json_extract(doc, '$.userId') AS uid, count(*) AS n, max(updated_at) AS ts, "
        "json_group_array(DISTINCT json_extract(doc, '$.room')) AS rooms, max(doc) AS last "
        f"FROM docs WHERE coll = 'reports' AND {LIVE_REPORT} GROUP BY uid ORDER BY ts DESC LIMIT ? OFFSET ?",
        (count, offset)).fetchall()
    total = tx.conn.execute(f"SELECT count(DISTINCT json_extract(doc, '$.userId')) FROM docs WHERE coll = 'reports' AND {LIVE_REPORT}"
                            ).fetchone()[0]
    uids = [r["uid"] for r in rows]
    users = {u.id: u for u in store._users(tx.conn, tx.conn.execute(
        f"SELECT * FROM users WHERE id IN ({','.join('?' * len(uids))})", uids).fetchall())} if uids else {}
    out = []
    for r in rows:
        last = json.loads(r["last"])
        user = users.get(r["uid"])
        rooms = [json.loads(x) if isinstance(x, str) else x for x in json.loads(r["rooms"])]
        out.append({"userId": r["uid"], "username": user.username if user else last["message"]["u"]["username"],
                    "name": (user.name or user.username) if user else "", "message": last["message"]["msg"],
                    "msgId": last["msgId"], "ts": iso(r["ts"]), "rooms": rooms,
                    "count": r["n"], "isUserDeleted": user is None})
    return paged("reports", out, offset, total)


def moderation_user_reported_messages(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx)
    uid = get_str(p, "userId")
    user = store.get_user(tx.conn, user_id=uid)
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "reports", offset=offset, count=count,
                                  where=f"json_extract(doc, '$.userId') = ? AND {LIVE_REPORT}", args=(uid,))
    return {"user": {"_id": user.id, "username": user.username, "name": user.name or user.username} if user else None,
            "messages": items, "count": len(items), "offset": offset, "total": total}


def moderation_report_user(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    target = find_user(tx, {"userId": get_str(p, "userId")})
    description = get_str(p, "description")
    rid = new_id()
    store.doc_put(tx.conn, "user_reports", rid, {
        "_id": rid, "description": description, "reportedBy": _reporter(tx.user), "ts": iso(tx.now), "_hidden": False,
        "reportedUser": {"_id": target.id, "username": target.username, "name": target.name or target.username,
                         "createdAt": iso(target.created_at), "emails": [{"address": target.email}] if target.email else [],
                         "active": target.active}}, tx.now)
    return {}


def moderation_user_reports(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    """Live user reports grouped by the reported user (one SQL query)."""
    _moderator(tx)
    offset, count = page(p)
    rows = tx.conn.execute(
        "SELECT json_extract(doc, '$.reportedUser._id') AS uid, count(*) AS n, max(updated_at) AS ts, max(doc) AS last "
        f"FROM docs WHERE coll = 'user_reports' AND {LIVE_REPORT} GROUP BY uid ORDER BY ts DESC LIMIT ? OFFSET ?",
        (count, offset)).fetchall()
    total = tx.conn.execute("SELECT count(DISTINCT json_extract(doc, '$.reportedUser._id')) FROM docs "
                            f"WHERE coll = 'user_reports' AND {LIVE_REPORT}").fetchone()[0]
    out = [{"reportedUser": json.loads(r["last"])["reportedUser"], "ts": iso(r["ts"]), "count": r["n"]} for r in rows]
    return paged("reports", out, offset, total)


def moderation_user_reports_by_user_id(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx)
    uid = get_str(p, "userId")
    user = store.get_user(tx.conn, user_id=uid)
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "user_reports", offset=offset, count=count,
                                  where=f"json_extract(doc, '$.reportedUser._id') = ? AND {LIVE_REPORT}", args=(uid,))
    return {"user": user_obj(user) if user else None, "reports": items, "count": len(items), "offset": offset, "total": total}


def _hide_reports(tx: Tx, coll: str, where: str, args: tuple[Any, ...], reason: str | None) -> int:
    items, _ = store.doc_list(tx.conn, coll, where=f"{where} AND {LIVE_REPORT}", args=args)
    for doc in items:
        doc["_hidden"] = True
        doc["moderationInfo"] = {"hiddenAt": iso(tx.now), "moderatedBy": tx.user.id, "reason": reason or "", "action": "dismiss"}
        store.doc_put(tx.conn, coll, doc["_id"], doc, tx.now)
    return len(items)


def moderation_dismiss_reports(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx, manage=True)
    uid, mid = get_str(p, "userId", required=False), get_str(p, "msgId", required=False)
    if not uid and not mid:
        raise fail("The required \"userId\" or \"msgId\" param is missing.", "error-invalid-params")
    if uid:
        _hide_reports(tx, "reports", "json_extract(doc, '$.userId') = ?", (uid,), get_str(p, "reason", required=False))
    else:
        _hide_reports(tx, "reports", "json_extract(doc, '$.msgId') = ?", (mid,), get_str(p, "reason", required=False))
    return {}


def moderation_dismiss_user_reports(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx, manage=True)
    _hide_reports(tx, "user_reports", "json_extract(doc, '$.reportedUser._id') = ?", (get_str(p, "userId"),),
                  get_str(p, "reason", required=False))
    return {}


def moderation_delete_reported_messages(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    """Delete every message of the user that was reported, and close their reports."""
    _moderator(tx, manage=True)
    uid = get_str(p, "userId")
    items, _ = store.doc_list(tx.conn, "reports", where=f"json_extract(doc, '$.userId') = ? AND {LIVE_REPORT}", args=(uid,))
    for mid in dict.fromkeys(doc["msgId"] for doc in items):
        message = store.get_message(tx.conn, mid)
        if message is not None:
            store.delete_message(tx.conn, message, tx.now)
            tx.notify_room(message.room_id, "deleteMessage", {"_id": message.id})
    _hide_reports(tx, "reports", "json_extract(doc, '$.userId') = ?", (uid,), get_str(p, "reason", required=False))
    return {}

