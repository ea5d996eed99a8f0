"""Showing untrusted queue data safely: no terminal escapes, no markup, bounded size.

Payloads and error messages come from the queue and may hold escape sequences, Rich markup,
binary bytes or megabytes. Everything shown goes through ``clean`` (control characters become
visible ``\\x1b``-style escapes) and is rendered as plain ``rich.text.Text``, never as markup.
"""
from __future__ import annotations

import json
import re
import unicodedata

from backends.contract import Blob

#: Unicode categories that never reach a terminal raw: controls (C0, DEL, C1), format characters
#: (bidi controls, zero-width and invisible operators, tags, interlinear annotation, ...), the line and
#: paragraph separators, and lone surrogates (not encodable)
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
#: code points escaped whatever this Python's Unicode database says (a newer terminal may know them
#: as format characters): the whole tag block, the Egyptian hieroglyph format controls, the specials
EXTRA_UNSAFE = ((0xE0000, 0xE007F), (0x13430, 0x1343F), (0xFFF0, 0xFFFB))
#: the two controls ``clean`` keeps (multi-line payloads); ``one_line`` folds them
KEPT = "\n\t"


def _build_pattern() -> re.Pattern[str]:
    """One character class of every unsafe code point (the BMP scanned at import, about 15 ms;
    the astral planes' few format characters listed, plus EXTRA_UNSAFE)."""
    points = [c for c in range(0x10000) if unicodedata.category(chr(c)) in UNSAFE_CATEGORIES and chr(c) not in KEPT]
    points += [0x110BD, 0x110CD, *range(0x1BCA0, 0x1BCA4), *range(0x1D173, 0x1D17B)]
    for lo, hi in EXTRA_UNSAFE:
        points += range(lo, hi + 1)
    points = sorted(set(points))
    ranges: list[list[int]] = []
    for c in points:
        if ranges and c == ranges[-1][1] + 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    body = "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)
    return re.compile(f"[{body}]")


_UNSAFE = _build_pattern()


def is_unsafe(ch: str) -> bool:
    """Whether one character is escaped by ``clean`` (the rule, for tests and docs)."""
    return bool(_UNSAFE.match(ch))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape of the byte code - 0xDC00: show that byte
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(text: str) -> str:
    """Make text inert for a terminal: every control, format, separator or bidi character becomes a
    visible escape (``\\x1b``, ``\\u202e``, ``\\U000e0041``); newlines and tabs stay."""
    return _UNSAFE.sub(_escape, text)


def _clean_keeping_cr(text: str) -> str:
    return _UNSAFE.sub(lambda m: "\r" if m.group() == "\r" else _escape(m), text)


class InertStream:
    """A text stream whose every write goes through the same rule as ``clean`` (a carriage return
    also stays, for progress lines): the CLI's stdout and stderr, so that no line it prints, from
    any code path, can carry a raw escape sequence to the terminal."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_clean_keeping_cr(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def one_line(text: str | None, width: int = 120) -> str:
    """A single display line: cleaned, newlines folded, cut to ``width`` with an ellipsis."""
    if not text:
        return ""
    flat = clean(text.replace("\r\n", "\n")).replace("\n", " ⏎ ").replace("\t", " ")
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def blob_text(blob: Blob | None, pretty: bool = True) -> str:
    """The text to show for a stored value: pretty JSON when it parses, a size note when cut."""
    if blob is None:
        return ""
    text = blob.text
    if pretty and not blob.truncated and not blob.is_binary:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            pass
    out = clean(text)
    notes = []
    if blob.is_binary:
        notes.append("binary: not valid UTF-8, shown with \\x escapes")
    if blob.truncated:
        notes.append(f"truncated: showing the first {human_size(len(blob.text.encode('utf-8', 'replace')))} of {human_size(blob.size)}")
    if notes:  # first, so that a display cut further down never hides them
        out = "[" + "; ".join(notes) + "]\n" + out
    return out


def inert(text):
    """A ``rich.text.Text`` with every run of its text cleaned and its styles kept: the last
    guard of a widget that takes a Text built elsewhere (confirmation bodies)."""
    from rich.text import Span, Text

    cuts = sorted({0, len(text.plain), *(s.start for s in text.spans), *(s.end for s in text.spans)})
    out = Text(style=text.style, justify=text.justify, no_wrap=text.no_wrap, end=text.end)
    for part in text.divide(cuts[1:-1]) if len(cuts) > 2 else [text]:
        plain = clean(part.plain)
        out.append_text(Text(plain, spans=[Span(0, len(plain), s.style) for s in part.spans]))
    return out
