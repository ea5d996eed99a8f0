"""Untrusted queue data made inert for a terminal (console.safe_text)."""
from __future__ import annotations

import io
import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from backends.blob import to_blob
from backends.contract import Blob
from console.safe_text import blob_text, clean, human_size, one_line

#: Unicode Bidi_Control characters (UAX #9) plus the zero-width / BOM format characters
BIDI_CONTROLS = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}
ZERO_WIDTH = {"\u200b", "\u200c", "\u200d", "\ufeff"}


def is_unsafe(ch: str) -> bool:
    """The rule, written independently of console.safe_text: every control (C0, DEL, C1) but \\n and
    \\t, every format character (Cf: bidi controls, zero-width, invisible operators, tags), the line
    and paragraph separators, lone surrogates, and the whole tag block U+E0000-E007F, the specials U+FFF0-FFFB and the hieroglyph format controls."""
    if ch in "\n\t":
        return False
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
        return True
    code = ord(ch)  # blocks reserved for format characters in newer Unicode versions, too
    return 0xE0000 <= code <= 0xE007F or 0x13430 <= code <= 0x1343F or 0xFFF0 <= code <= 0xFFFB


def visible_escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, decoded with surrogateescape: that byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def render(text: str) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None, force_terminal=False,
                      legacy_windows=False)
    console.print(Text(text))
    return console.file.getvalue()


@pytest.mark.parametrize(
    ("raw", "visible"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # CSI colour
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear screen, cursor home
        ("\x1b]0;pwned title\x07", "\\x1b]0;pwned title\\x07"),  # OSC set title, BEL terminated
        ("\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\", "\\x1b]8;;http://evil.example\\x1b\\link\\x1b]8;;\\x1b\\"),
        ("\x9b31mc1", "\\x9b31mc1"),  # C1 CSI
        ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),  # C1 OSC ... ST
        ("a\x00b", "a\\x00b"),
        ("del\x7f", "del\\x7f"),
        ("cr\roverwrite", "cr\\x0doverwrite"),
        ("bs\x08\x08", "bs\\x08\\x08"),
        ("user\u202eexe.txt", "user\\u202eexe.txt"),  # RIGHT-TO-LEFT OVERRIDE
        ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("arabic\u061cmark", "arabic\\u061cmark"),
        ("keeps\nnewlines\tand tabs", "keeps\nnewlines\tand tabs"),
        ("ünïcödé ✓ 日本語 emoji 🎉", "ünïcödé ✓ 日本語 emoji 🎉"),
        # issue 9: format and separator characters that used to pass raw
        ("word\u2060joiner", "word\\u2060joiner"),
        ("soft\u00adhyphen", "soft\\xadhyphen"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("f\u2061x\u2062y\u2063z\u2064", "f\\u2061x\\u2062y\\u2063z\\u2064"),
        ("\ufff9ruby\ufffatext\ufffb", "\\ufff9ruby\\ufffatext\\ufffb"),
        ("tag\U000e0001\U000e0041\U000e007f\U000e0000", "tag\\U000e0001\\U000e0041\\U000e007f\\U000e0000"),
        ("mongolian\u180e", "mongolian\\u180e"),
    ],
)
def test_clean_makes_controls_visible(raw, visible):
    out = clean(raw)
    assert out == visible
    assert not any(is_unsafe(ch) for ch in out)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=200))
def test_clean_property_no_raw_control_survives(text):
    out = clean(text)
    bad = [hex(ord(ch)) for ch in out if is_unsafe(ch)]
    assert bad == []
    # nothing else changes: safe characters stay, each unsafe one becomes its visible escape
    expected = "".join(visible_escape(ch) if is_unsafe(ch) else ch for ch in text)
    assert out == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(
    ["\x1b", "\x9b", "\x07", "\x00", "\x7f", "\u202e", "\u061c", "\u200f", "a", "[", "]", "\n", "\t", "é"]),
    max_size=60))
def test_clean_property_dense_controls(text):
    out = clean(text)
    assert not any(is_unsafe(ch) for ch in out)
    assert out.count("\n") == text.count("\n")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=120))
def test_one_line_is_single_safe_line(text, width):
    out = one_line(text, width)
    assert "\n" not in out and "\r" not in out and "\t" not in out
    assert not any(is_unsafe(ch) for ch in out)
    assert len(out) <= width


def test_one_line_folds_and_cuts():
    assert one_line("a\r\nb\nc\td", 100) == "a ⏎ b ⏎ c d"
    assert one_line("x" * 50, 10) == "x" * 9 + "…"
    assert one_line(None) == ""
    assert one_line("\x1b[1mhi", 100) == "\\x1b[1mhi"


@pytest.mark.parametrize("markup", ["[bold]loud[/bold]", "[red on white]x[/]", "[link=http://evil]c[/link]",
                                    "[/]", "[@click=app.quit]q[/]"])
def test_rich_markup_stays_literal(markup):
    shown = render(clean(markup))
    assert markup in shown
    # and a payload mixing escape codes and markup renders with neither effect
    mixed = render(clean(f"\x1b[31m{markup}\x1b[0m"))
    assert markup in mixed
    assert "\x1b" not in mixed
    assert "\\x1b[31m" in mixed


def test_rendered_text_has_no_escape_bytes_even_with_colour_console():
    console = Console(file=io.StringIO(), width=120, color_system=None, force_terminal=True)
    console.print(Text(clean("\x1b]0;title\x07[bold]b[/bold]\x9b2J")))
    out = console.file.getvalue()
    assert "\x07" not in out and "\x9b" not in out
    assert "[bold]b[/bold]" in out


# ---------------------------------------------------------------------- blob_text


def test_blob_text_pretty_prints_json():
    blob = to_blob(b'{"a":1,"b":[1,2],"s":"\\u001b[31m"}')
    out = blob_text(blob)
    assert out.splitlines()[0] == "{"
    assert '  "a": 1,' in out
    # a control character in a JSON string stays a JSON escape when re-encoded: inert text
    assert "\x1b" not in out
    assert '"s": "\\u001b[31m"' in out
    assert blob_text(blob, pretty=False) == '{"a":1,"b":[1,2],"s":"\\u001b[31m"}'


def test_blob_text_invalid_json_is_shown_as_is():
    blob = to_blob(b'{"a": 1, oops')
    assert blob_text(blob) == '{"a": 1, oops'
    assert blob_text(to_blob(b"plain words")) == "plain words"


def test_blob_text_none_is_empty():
    assert blob_text(None) == ""


def test_blob_text_binary_is_flagged_and_escaped():
    raw = b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"
    blob = to_blob(raw)
    assert blob.is_binary is True
    assert blob.size == len(raw)
    out = blob_text(blob)
    assert "binary: not valid UTF-8" in out
    assert "\\x89" in out and "\\xff" in out
    assert not any(is_unsafe(ch) for ch in out)


def test_blob_text_truncated_shows_sizes_and_is_not_parsed():
    payload = json.dumps({"k": "v" * 3000}).encode()
    blob = to_blob(payload, limit=1024)
    assert blob.truncated is True and blob.size == len(payload)
    assert len(blob.text) == 1024
    out = blob_text(blob)
    note, _, body = out.partition("\n")
    assert note == "[truncated: showing the first 1.0 KiB of 2.9 KiB]"
    assert body.startswith('{"k": "vvv')  # not pretty-printed: it is cut
    assert body == blob.text


def test_blob_cut_inside_a_multibyte_character_is_not_binary():
    payload = ("é" * 600).encode()  # 1200 bytes
    blob = to_blob(payload, limit=1001)  # cuts the 501st "é" in half
    assert blob.is_binary is False
    assert blob.truncated is True
    assert blob.text == "é" * 500


def test_blob_text_deeply_nested_json_does_not_crash():
    depth = 200_000
    text = "[" * depth + "]" * depth
    blob = Blob(text=text, size=len(text))
    out = blob_text(blob)  # json.loads raises RecursionError: shown raw
    assert out == text


def test_blob_text_nested_json_within_limits_is_pretty():
    text = "[" * 50 + "1" + "]" * 50
    out = blob_text(Blob(text=text, size=len(text)))
    assert out.count("\n") == 100
    assert out.splitlines()[50].strip() == "1"


def test_blob_text_hostile_string_inside_json():
    raw = json.dumps({"name": "\u202etxt.exe", "m": "[bold]x[/bold]", "c1": "\x9b"}).encode()
    out = blob_text(to_blob(raw))
    assert "\\u202e" in out and "\\x9b" in out
    assert "[bold]x[/bold]" in out
    assert not any(is_unsafe(ch) for ch in out)


@pytest.mark.parametrize(("n", "shown"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                                          (3 * 1024 * 1024, "3.0 MiB"), (5 * 1024 ** 4, "5120.0 GiB")])
def test_human_size(n, shown):
    assert human_size(n) == shown


def test_unicodedata_sanity_of_the_bidi_set():
    # guard the test's own table: each of these really is a bidi/format control
    for ch in BIDI_CONTROLS | ZERO_WIDTH:
        assert unicodedata.category(ch) == "Cf"


def test_every_unsafe_code_point_is_escaped():
    """Exhaustive over all of Unicode: nothing the rule names survives, nothing else changes."""
    every = "".join(map(chr, range(0x110000)))
    out = clean(every)
    assert not any(is_unsafe(ch) for ch in out)
    unsafe = [ch for ch in every if is_unsafe(ch)]
    assert len(unsafe) > 2000  # C0, C1, ~160 Cf, the separators, surrogates, the tag block
    assert out == "".join(visible_escape(ch) if is_unsafe(ch) else ch for ch in every)
