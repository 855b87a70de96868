"""How MQTT payload bytes map to a publication's JSON `data` and back (no I/O).

MQTT → data:
  * UTF-8 text that is a JSON number, object, array, true, false or null → that value;
  * any other UTF-8 text (including a JSON string, quotes and all, and the empty payload) → the text;
  * bytes that are not UTF-8 → {"$base64": "<standard base64>"}.
data → MQTT (publications from websocket clients, the HTTP APIs, chat, JSON-RPC):
  * a string → its UTF-8 bytes, without quotes (so plain text reaches a device as plain text);
  * {"$base64": "..."} alone → the decoded bytes;
  * anything else → compact JSON (`{"a":1}`), UTF-8.
MQTT → MQTT always carries the exact bytes published (they travel with the publication).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from hub.utf8 import JSON_SURROGATES

BASE64_KEY = "$base64"



def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_constant=_no_constants)
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_data(payload: bytes) -> Any:
    """The JSON value websocket clients, history and /ws/events see for an MQTT payload."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return {BASE64_KEY: base64.b64encode(payload).decode("ascii")}
    head = text.lstrip()[:1]
    if not head or head == '"':
        return text
    if head in "{[-0123456789tfn":
        try:
            value = _decoder.decode(text)
        except ValueError:
            return text
        if isinstance(value, dict) and len(value) == 1 and BASE64_KEY in value:
            return text  # would read back as bytes: keep it the text it is
        return value
    return text


def to_payload(data: Any) -> bytes:
    """The MQTT payload for a publication's `data`."""
    if isinstance(data, str):
        return data.encode("utf-8", JSON_SURROGATES)
    if isinstance(data, dict) and len(data) == 1 and isinstance(data.get(BASE64_KEY), str):
        try:
            return base64.b64decode(data[BASE64_KEY], validate=True)
        except (binascii.Error, ValueError):
            pass
    try:
        return _encoder.encode(data).encode("utf-8", JSON_SURROGATES)
    except (TypeError, ValueError):
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8", JSON_SURROGATES)
