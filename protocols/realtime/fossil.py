"""Fossil delta encoding (https://fossil-scm.org/home/doc/tip/www/delta_format.wiki), the `fossil` delta
type of Centrifugo's delta compression: `create(old, new)` is a delta the SDKs apply to `old` to get
`new`. A port of the encoder in fossil's delta.c; `apply` (for tests and tools) is its decoder."""

from __future__ import annotations

NHASH = 16
DIGITS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_VALUES = {c: i for i, c in enumerate(DIGITS)}


class DeltaError(ValueError):
    """A delta that does not apply."""


def _put_int(v: int, out: bytearray) -> None:
    if v == 0:
        out += b"0"
        return
    digits = bytearray()
    while v > 0:
        digits.append(DIGITS[v & 0x3F])
        v >>= 6
    digits.reverse()
    out += digits


def _digit_count(v: int) -> int:
    i, x = 1, 64
    while v >= x:
        i += 1
        x <<= 6
    return i


def checksum(data: bytes) -> int:
    """The 32-bit checksum a delta ends with."""
    sum0 = sum1 = sum2 = sum3 = 0
    n = len(data)
    i = 0
    while n >= 16:
        sum0 += data[i] + data[i + 4] + data[i + 8] + data[i + 12]
        sum1 += data[i + 1] + data[i + 5] + data[i + 9] + data[i + 13]
        sum2 += data[i + 2] + data[i + 6] + data[i + 10] + data[i + 14]
        sum3 += data[i + 3] + data[i + 7] + data[i + 11] + data[i + 15]
        i += 16
        n -= 16
    while n >= 4:
        sum0 += data[i]
        sum1 += data[i + 1]
        sum2 += data[i + 2]
        sum3 += data[i + 3]
        i += 4
        n -= 4
    sum3 += (sum2 << 8) + (sum1 << 16) + (sum0 << 24)
    if n == 3:
        sum3 += data[i + 2] << 8
    if n >= 2:
        sum3 += data[i + 1] << 16
    if n >= 1:
        sum3 += data[i] << 24
    return sum3 & 0xFFFFFFFF


class _RollingHash:
    __slots__ = ("a", "b", "i", "z")

    def __init__(self, window: bytes) -> None:
        a = b = window[0]
        for c in window[1:NHASH]:
            a = (a + c) & 0xFFFF
            b = (b + a) & 0xFFFF
        self.a, self.b, self.i, self.z = a, b, 0, bytearray(window[:NHASH])

    def next(self, c: int) -> None:
        old = self.z[self.i]
        self.z[self.i] = c
        self.i = (self.i + 1) & (NHASH - 1)
        self.a = (self.a - old + c) & 0xFFFF
        self.b = (self.b - NHASH * old + self.a) & 0xFFFF

    def value(self) -> int:
        return self.a | (self.b << 16)


def create(src: bytes, out: bytes) -> bytes:
    """The delta that turns `src` into `out`."""
    delta = bytearray()
    len_src, len_out = len(src), len(out)
    _put_int(len_out, delta)
    delta += b"\n"
    if len_src <= NHASH:
        _put_int(len_out, delta)
        delta += b":" + out
        _put_int(checksum(out), delta)
        delta += b";"
        return bytes(delta)
    n_hash = len_src // NHASH
    collide = [-1] * n_hash
    landmark = [-1] * n_hash
    for i in range(0, len_src - NHASH, NHASH):
        hv = _RollingHash(src[i:i + NHASH]).value() % n_hash
        collide[i // NHASH] = landmark[hv]
        landmark[hv] = i // NHASH
    base = 0
    while base + NHASH < len_out:
        best_cnt = best_ofst = best_litsz = 0
        h = _RollingHash(out[base:base + NHASH])
        i = 0
        while True:
            limit = 250
            block = landmark[h.value() % n_hash]
            while block >= 0 and limit > 0:
                limit -= 1
                i_src = block * NHASH
                y = base + i
                limit_x = len_src if len_src - i_src <= len_out - y else i_src + len_out - y
                x = i_src
                while x < limit_x and src[x] == out[y]:
                    x += 1
                    y += 1
                j = x - i_src - 1
                k = 1
                while k < i_src and k <= i and src[i_src - k] == out[base + i - k]:
                    k += 1
                k -= 1
                ofst = i_src - k
                cnt = j + k + 1
                litsz = i - k
                sz = _digit_count(i - k) + _digit_count(cnt) + _digit_count(ofst) + 3
                if cnt >= sz and cnt > best_cnt:
                    best_cnt, best_ofst, best_litsz = cnt, ofst, litsz
                block = collide[block]
            if best_cnt > 0:
                if best_litsz > 0:
                    _put_int(best_litsz, delta)
                    delta += b":" + out[base:base + best_litsz]
                    base += best_litsz
                base += best_cnt
                _put_int(best_cnt, delta)
                delta += b"@"
                _put_int(best_ofst, delta)
                delta += b","
                break
            if base + i + NHASH >= len_out:
                _put_int(len_out - base, delta)
                delta += b":" + out[base:]
                base = len_out
                break
            h.next(out[base + i + NHASH])
            i += 1
    if base < len_out:
        _put_int(len_out - base, delta)
        delta += b":" + out[base:]
    _put_int(checksum(out), delta)
    delta += b";"
    return bytes(delta)


def apply(src: bytes, delta: bytes) -> bytes:
    """`src` with `delta` applied; DeltaError if the delta is malformed or its checksum fails."""
    pos = 0

    def get_int() -> int:
        nonlocal pos
        value = 0
        start = pos
        while pos < len(delta) and delta[pos] in _VALUES:
            value = (value << 6) + _VALUES[delta[pos]]
            pos += 1
        if pos == start:
            raise DeltaError("number expected")
        return value

    limit = get_int()
    if pos >= len(delta) or delta[pos] != ord("\n"):
        raise DeltaError("size terminator expected")
    pos += 1
    out = bytearray()
    while pos < len(delta):
        cnt = get_int()
        op = delta[pos] if pos < len(delta) else None
        pos += 1
        if op == ord("@"):
            ofst = get_int()
            if pos >= len(delta) or delta[pos] != ord(","):
                raise DeltaError("copy terminator expected")
            pos += 1
            if ofst + cnt > len(src) or len(out) + cnt > limit:
                raise DeltaError("copy out of range")
            out += src[ofst:ofst + cnt]
        elif op == ord(":"):
            if len(out) + cnt > limit or pos + cnt > len(delta):
                raise DeltaError("insert out of range")
            out += delta[pos:pos + cnt]
            pos += cnt
        elif op == ord(";"):
            if cnt != checksum(bytes(out)):
                raise DeltaError("bad checksum")
            if len(out) != limit:
                raise DeltaError("size mismatch")
            return bytes(out)
        else:
            raise DeltaError("unknown operator")
    raise DeltaError("unterminated delta")
