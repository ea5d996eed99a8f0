"""The colours of completed and failed in charts and sparklines, from the current theme (its
``success`` and ``error``), so that every theme, user themes included, draws them its own way."""
from __future__ import annotations

from textual.color import Color
from textual.theme import Theme

#: when a theme leaves success or error unset
FALLBACK = ("green", "red")


def _parse(value: str | None, fallback: str) -> Color:
    try:
        return Color.parse(value or fallback)
    except Exception:  # a user theme's colour Textual cannot read: the terminal's own
        return Color.parse(fallback)


def rich_styles(theme: Theme | None) -> tuple[str, str]:
    """(completed, failed) as Rich colours: the theme's hex, or ``color(N)`` for an ANSI theme
    (the terminal's own palette decides the shade)."""
    out = []
    for value, fallback in zip((getattr(theme, "success", None), getattr(theme, "error", None)), FALLBACK):
        c = _parse(value, fallback)
        out.append(f"color({c.ansi})" if c.ansi is not None and c.ansi >= 0 else c.hex)
    return out[0], out[1]


def plotext_colors(theme: Theme | None) -> tuple[object, object]:
    """(completed, failed) as plotext colours: an RGB tuple, or the 256-colour code of an ANSI
    theme's colour."""
    out: list[object] = []
    for value, fallback in zip((getattr(theme, "success", None), getattr(theme, "error", None)), FALLBACK):
        c = _parse(value, fallback)
        out.append(c.ansi if c.ansi is not None and c.ansi >= 0 else c.rgb)
    return out[0], out[1]
