"""Rocket.Chat v1 custom emoji, custom sounds and assets."""

from __future__ import annotations

from typing import Any

from .. import store
from ..model import (
    get_str,
    iso,
    new_id,
)
from .base import Tx, _require_permission, fail, page, paged, since

ASSETS = ("logo", "background", "favicon_ico", "favicon", "favicon_16", "favicon_32", "favicon_192", "favicon_512",
          "touchicon_180", "touchicon_180_pre", "tile_70", "tile_144", "tile_150", "tile_310_square", "tile_310_wide",
          "safari_pinned", "logo_dark")


def _file_part(p: dict[str, Any], key: str, *, required: bool) -> dict[str, Any] | None:
    part = p.get(key)
    if isinstance(part, dict) and isinstance(part.get("data"), bytes):
        return part
    if required:
        raise fail("No file uploaded", "error-no-file-uploaded" if key != "emoji" else "error-invalid-emoji")
    return None


def _aliases(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(a).strip() for a in value if str(a).strip()]
    return [a.strip() for a in str(value or "").split(",") if a.strip()]


def _emoji_name(tx: Tx, name: Any, aliases: list[str], own_id: str | None = None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise fail("The field Name is required", "error-the-field-is-required")
    name = name.strip()
    taken, _ = store.doc_list(tx.conn, "emoji", where="json_extract(doc, '$.name') = ? OR EXISTS "
                              "(SELECT 1 FROM json_each(json_extract(doc, '$.aliases')) a WHERE a.value = ?)", args=(name, name))
    if any(e["_id"] != own_id for e in taken) or name in aliases:
        raise fail(f"The custom emoji or one of its aliases is already in use: {name}", "Custom_Emoji_Error_Name_Or_Alias_Already_In_Use")
    return name


def emoji_create(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-emoji")
    part = _file_part(p, "emoji", required=True)
    assert part is not None
    aliases = _aliases(p.get("aliases"))
    name = _emoji_name(tx, p.get("name"), aliases)
    eid = new_id()
    extension = (part.get("name") or "").rsplit(".", 1)[-1].lower() or "png"
    doc = {"_id": eid, "name": name, "aliases": aliases, "extension": extension, "etag": new_id(), "_updatedAt": iso(tx.now)}
    store.doc_put(tx.conn, "emoji", eid, doc, tx.now)
    store.doc_put(tx.conn, "emoji_files", eid, {"type": part.get("type") or "image/png", "data": part["data"].hex()}, tx.now)
    return {}


def emoji_update(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-emoji")
    doc = store.doc_get(tx.conn, "emoji", get_str(p, "_id") or "")
    if doc is None:
        raise fail("Emoji not found", "Custom_Emoji_Error_Invalid_Emoji")
    aliases = _aliases(p.get("aliases")) if "aliases" in p else doc.get("aliases", [])
    doc["name"] = _emoji_name(tx, p.get("name"), aliases, doc["_id"])
    doc["aliases"] = aliases
    part = _file_part(p, "emoji", required=False)
    if part is not None:
        doc["extension"] = (part.get("name") or "").rsplit(".", 1)[-1].lower() or doc.get("extension", "png")
        doc["etag"] = new_id()
        store.doc_put(tx.conn, "emoji_files", doc["_id"], {"type": part.get("type") or "image/png", "data": part["data"].hex()},
                      tx.now)
    doc["_updatedAt"] = iso(tx.now)
    store.doc_put(tx.conn, "emoji", doc["_id"], doc, tx.now)
    return {}


def emoji_delete(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-emoji")
    eid = get_str(p, "emojiId") or ""
    doc = store.doc_get(tx.conn, "emoji", eid)
    if doc is None:
        raise fail("Emoji not found", "Custom_Emoji_Error_Invalid_Emoji")
    store.doc_delete(tx.conn, "emoji", eid)
    store.doc_delete(tx.conn, "emoji_files", eid)
    store.doc_put(tx.conn, "emoji_removed", eid, {"_id": eid, "_deletedAt": iso(tx.now)}, tx.now)
    return {}


def emoji_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    updated = since(p, "updatedSince")
    if updated is None:
        items, _ = store.doc_list(tx.conn, "emoji")
        return {"emojis": {"update": items, "remove": []}}
    items, _ = store.doc_list(tx.conn, "emoji", where="updated_at > ?", args=(updated,))
    removed, _ = store.doc_list(tx.conn, "emoji_removed", where="updated_at > ?", args=(updated,))
    return {"emojis": {"update": items, "remove": removed}}


def emoji_all(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "emoji", offset=offset, count=count)
    return paged("emojis", items, offset, total)


def sound_save(tx: Tx, sound: dict[str, Any]) -> str:
    """The realtime method insertOrUpdateSound: a custom sound's record (its file is uploaded separately)."""
    _require_permission(tx, "manage-sounds")
    name = sound.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("The field Name is required", "error-the-field-is-required")
    extension = str(sound.get("extension") or "mp3")
    sid = sound.get("_id") if isinstance(sound.get("_id"), str) and sound["_id"] else new_id()
    taken, _ = store.doc_list(tx.conn, "sounds", where="json_extract(doc, '$.name') = ? AND id != ?", args=(name.strip(), sid))
    if taken:
        raise fail("The custom sound name is already in use", "Custom_Sound_Error_Name_Already_In_Use")
    doc = {"_id": sid, "name": name.strip(), "extension": extension, "_updatedAt": iso(tx.now)}
    store.doc_put(tx.conn, "sounds", sid, doc, tx.now)
    return sid


def sound_delete(tx: Tx, sid: str) -> bool:
    _require_permission(tx, "manage-sounds")
    if not store.doc_delete(tx.conn, "sounds", sid):
        raise fail("Custom sound not found", "Custom_Sound_Error_Invalid_Sound")
    return True


def sounds_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    offset, count = page(p)
    name = get_str(p, "name", required=False)
    where, args = ("lower(json_extract(doc, '$.name')) LIKE ?", (f"%{name.lower()}%",)) if name else ("", ())
    items, total = store.doc_list(tx.conn, "sounds", offset=offset, count=count, where=where, args=args)
    return paged("sounds", items, offset, total)


def sounds_get_one(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    doc = store.doc_get(tx.conn, "sounds", get_str(p, "_id") or "")
    if doc is None:
        raise fail("Custom sound not found", "Custom_Sound_Error_Invalid_Sound")
    return {"sound": doc}


def asset_set(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-assets")
    name = get_str(p, "assetName")
    if name not in ASSETS:
        raise fail("Invalid asset", "error-invalid-asset")
    part = _file_part(p, "asset", required=True)
    assert part is not None
    store.doc_put(tx.conn, "assets", name or "", {"type": part.get("type") or "image/png", "data": part["data"].hex()}, tx.now)
    store.set_setting(tx.conn, f"Assets_{name}", {"url": f"assets/{name}", "defaultUrl": None}, tx.now)
    return {}


def asset_unset(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-assets")
    name = get_str(p, "assetName")
    if name not in ASSETS:
        raise fail("Invalid asset", "error-invalid-asset")
    store.doc_delete(tx.conn, "assets", name or "")
    store.set_setting(tx.conn, f"Assets_{name}", {"defaultUrl": None}, tx.now)
    return {}

