"""UTF-8 for texts that may hold lone surrogates, and compact JSON written that way.

JSON decoders accept an escaped lone surrogate (`"\\ud800"`, which Centrifugo passes through as it came) and give
Python a str that strict UTF-8 cannot encode. Encoded with `JSON_SURROGATES`, such a character becomes the same
six-character escape again, so a JSON text stays valid JSON with the value it was decoded from; other texts are
unchanged.
"""

import json
from typing import Any

JSON_SURROGATES = "backslashreplace"  # the `errors` of str.encode("utf-8", ...): a lone surrogate -> \udXXX


def compact_json(value: Any) -> bytes:
    """`value` as compact JSON in UTF-8, non-ASCII as is, a lone surrogate as its escape."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", JSON_SURROGATES)
