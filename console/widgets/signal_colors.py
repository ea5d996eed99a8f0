"""The colours of completed and failed in charts and sparklines, from the current theme (its
``success`` and ``error``), so that every theme, user themes included, draws them its own way."""
from __future__ import annotations

from functools import lru_cache

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
    (the terminal's own palette decides the shade). Cached: the overview asks once per row."""
    return _rich(getattr(theme, "success", None), getattr(theme, "error", None))


def plotext_colors(theme: Theme | None) -> tuple[object, object]:
    """(completed, failed) as plotext colours: an RGB tuple, or the 256-colour code of an ANSI
    theme's colour."""
    ok, bad = (_parse(v, f) for v, f in zip((getattr(theme, "success", None), getattr(theme, "error", None)), FALLBACK))
    return tuple(c.ansi if c.ansi is not None and c.ansi >= 0 else c.rgb for c in (ok, bad))  # type: ignore[return-value]


@lru_cache(maxsize=64)
def _rich(success: str | None, error: str | None) -> tuple[str, str]:
    ok, bad = (_parse(v, f) for v, f in zip((success, error), FALLBACK))
    return tuple(f"color({c.ansi})" if c.ansi is not None and c.ansi >= 0 else c.hex for c in (ok, bad))  # type: ignore[return-value]
