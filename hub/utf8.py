"""UTF-8 for texts that may hold lone surrogates.

JSON decoders accept an escaped lone surrogate (`"\\ud800"`, which Centrifugo passes through as it came) and give
Python a str that strict UTF-8 cannot encode. Encoded with `JSON_SURROGATES`, such a character becomes the same
six-character escape again, so a JSON text stays valid JSON with the value it was decoded from; other texts are
unchanged.
"""

JSON_SURROGATES = "backslashreplace"  # the `errors` of str.encode("utf-8", ...): a lone surrogate -> \udXXX
