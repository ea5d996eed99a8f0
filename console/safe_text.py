"""Showing untrusted queue data safely: no terminal escapes, no markup, bounded size.

Payloads and error messages come from the queue and may hold escape sequences, Rich markup,
binary bytes or megabytes. Everything shown goes through ``clean`` (control characters become
visible ``\\x1b``-style escapes) and is rendered as plain ``rich.text.Text``, never as markup.
"""
from __future__ import annotations

import json
import re

from backends.contract import Blob

# C0 controls except \n and \t, DEL, C1 controls, bidi (incl. U+061C ALM) / zero-width format characters,
# and lone surrogates (a key or id that is not valid UTF-8, decoded with surrogateescape)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff"
                     "\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape of the byte code - 0xDC00: show that byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str) -> str:
    """Make text inert for a terminal: every control or bidi character becomes a visible escape."""
    return _UNSAFE.sub(_escape, text)


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
