"""The Numba RLE encoder kernel: ``encode_runs`` writes Kaggle ``start length`` pairs straight into
ASCII bytes, skipping uniform stretches 8 pixels (one uint64 word) at a time with SWAR tests.

``pipeline.ops.rle`` is the public API (and holds the numpy reference it is tested against).
"""

from __future__ import annotations

import numba
import numpy as np

_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH = np.uint64(0x8080808080808080)
_ONES = np.uint64(0x0101010101010101)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
# bit index of an isolated bit b (a power of two): _DEBRUIJN_INDEX[(b * _DEBRUIJN) >> 58]
_DEBRUIJN_INDEX = np.zeros(64, np.uint8)
for _bit in range(64):
    _DEBRUIJN_INDEX[((1 << _bit) * int(_DEBRUIJN)) % (1 << 64) >> 58] = _bit
_POW10 = np.array([10**k for k in range(1, 19)], np.int64)
_PAIR_BYTES = 40  # room for one 'start length ' pair: two <= 19-digit numbers and two spaces


@numba.njit(cache=True, nogil=True, inline="always")
def _above(word, flip, add):
    """High bit of each byte of ``word ^ flip`` set where that byte > ``127 - add / 0x01..``.

    The SWAR byte comparison (Hacker's Delight; Bit Twiddling Hacks' ``hasmore``) made exact per
    byte: the low 7 bits plus ``add`` (< 128 per byte, so no carry into the next byte) reach 128
    exactly when they exceed the level, and a byte with its high bit set is > 127 anyway.
    Levels above 127 use the complemented word (``flip`` = all ones): x > level <=> not
    (~x > 254 - level), so the caller compares against inverted flags instead.
    """
    word ^= flip
    return (((word & _LOW7) + add) | word) & _HIGH


@numba.njit(cache=True, nogil=True, inline="always")
def _write_int(buf, pos, value):
    """Write ``value`` (>= 0) as ASCII digits at ``buf[pos:]``; return the new position.

    The digit count comes from a fixed set of comparisons (no data-dependent branch), then the
    digits are written from the last one back: no reversal, no special case for 0.
    """
    digits = 1
    for k in range(_POW10.size):
        digits += value >= _POW10[k]
    end = pos + digits
    for j in range(end - 1, pos - 1, -1):
        buf[j] = 48 + value % 10
        value //= 10
    return end


@numba.njit(cache=True, nogil=True)
def _grow(out, pos):
    grown = np.empty(out.size * 2, np.uint8)
    grown[:pos] = out[:pos]
    return grown


@numba.njit(cache=True, nogil=True, inline="always")
def _toggle(out, pos, pixel, on, run_start):
    """A transition at ``pixel``: open a run, or close the open one by writing 'start+1 length '."""
    if on:
        if pos + _PAIR_BYTES > out.size:
            out = _grow(out, pos)
        pos = _write_int(out, pos, run_start + 1)
        out[pos] = 32
        pos = _write_int(out, pos + 1, pixel - run_start)
        out[pos] = 32
        pos += 1
    return out, pos, not on, pixel


# Uniform stretches are found with the word-wide existence tests ``hasmore`` and ``hasless`` of
# Bit Twiddling Hacks (Hacker's Delight 6-1): with y = word ^ flip and c a byte value times 0x01..,
# ((y + c) | y) & 0x80.. is nonzero iff some byte of y is > 127 - c (c <= 127), and
# ((y - c) & ~y) & 0x80.. iff some byte is < c (c <= 128). A carry or borrow between bytes only
# comes from a byte that passes the test itself, so the answer is exact for the word. Three
# integer operations per word, OR-ed over a block of ``_BLOCK`` words with no exit inside it.
_BLOCK = 8


@numba.njit(cache=True, nogil=True)
def _skip_more(words, start, flip, const):
    """First word index >= start holding a byte of ``word ^ flip`` > 127 - const
    (or ``words.size``).

    Indices are unsigned: numba then emits no negative-index wraparound on each load (measured
    2x on the whole kernel).
    """
    i, n_words, block = np.uint64(start), np.uint64(words.size), np.uint64(_BLOCK)
    while i + block <= n_words:
        found = np.uint64(0)
        for j in range(_BLOCK):
            y = words[i + np.uint64(j)] ^ flip
            found |= (y + const) | y
        if found & _HIGH:
            break
        i += block
    while i < n_words:
        y = words[i] ^ flip
        if ((y + const) | y) & _HIGH:
            break
        i += np.uint64(1)
    return np.int64(i)


@numba.njit(cache=True, nogil=True)
def _skip_less(words, start, flip, const):
    """First word index >= start holding a byte of ``word ^ flip`` < const (or ``words.size``)."""
    i, n_words, block = np.uint64(start), np.uint64(words.size), np.uint64(_BLOCK)
    while i + block <= n_words:
        found = np.uint64(0)
        for j in range(_BLOCK):
            y = words[i + np.uint64(j)] ^ flip
            found |= (y - const) & ~y
        if found & _HIGH:
            break
        i += block
    while i < n_words:
        y = words[i] ^ flip
        if ((y - const) & ~y) & _HIGH:
            break
        i += np.uint64(1)
    return np.int64(i)


@numba.njit(cache=True, nogil=True)
def encode_runs(flat: np.ndarray, words: np.ndarray, level: int) -> np.ndarray:
    """ASCII 'start length ...' (1-based) of the pixels ``> level`` (0..254) of a flat uint8 buffer.

    ``words`` is ``flat[: 8 * (size // 8)]`` viewed as little-endian uint64. Uniform stretches are
    skipped a word (8 pixels) at a time (``_skip_more``/``_skip_less``): outside a run they look
    for a byte > level, inside one for a byte <= level, with three integer operations per word
    (no per-pixel compare; fast as scalar code, faster where the compiler vectorises the block).
    A word holding a transition finds it from its exact per-byte flags (``_above``): one bit per
    byte that differs from the byte before, taken lowest first (de Bruijn bit index). Digits are
    written by ``_write_int``; a pair is always followed by a space, the last one dropped.
    """
    high = level > 127
    flip = ~np.uint64(0) if high else np.uint64(0)
    # Outside a run: find a byte > level; inside one: a byte <= level (< level + 1). Levels over
    # 127 test the complemented word: x > level <=> ~x < 255 - level;
    # x <= level <=> ~x > 254 - level.
    off_const = np.uint64(255 - level if high else 127 - level) * _ONES
    on_const = np.uint64(level - 127 if high else level + 1) * _ONES
    add = np.uint64((level - 127) if high else (127 - level)) * _ONES
    invert = _HIGH if high else np.uint64(0)  # _above of the flipped word flags bytes <= level
    out = np.empty(4096, np.uint8)
    pos = 0
    on = False
    run_start = 0
    n_words = words.size
    i = 0
    while True:
        if (
            on != high
        ):  # inside a run (level <= 127) or outside one (level > 127): find a byte < const
            i = _skip_less(words, i, flip, on_const if on else off_const)
        else:
            i = _skip_more(words, i, flip, on_const if on else off_const)
        if i == n_words:
            break
        bits = (_above(words[i], flip, add) ^ invert) >> np.uint64(
            7
        )  # byte k's "> level" at bit 8k
        changes = bits ^ ((bits << np.uint64(8)) | np.uint64(on))
        while changes:
            lowest = changes & (~changes + np.uint64(1))
            k = _DEBRUIJN_INDEX[(lowest * _DEBRUIJN) >> np.uint64(58)] >> 3
            out, pos, on, run_start = _toggle(out, pos, 8 * i + k, on, run_start)
            changes ^= lowest
        i += 1
    for j in range(8 * n_words, flat.size):  # the last size % 8 pixels
        if (flat[j] > level) != on:
            out, pos, on, run_start = _toggle(out, pos, j, on, run_start)
    if on:  # the last pixel is set: close the final run (the copied Kaggle snippet loses it)
        out, pos, on, run_start = _toggle(out, pos, flat.size, on, run_start)
    return out[: max(pos - 1, 0)]  # drop the trailing space
