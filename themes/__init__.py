"""Themes shipped with queue-console: Textual theme definitions plus the app stylesheet.

The app loads ``default.tcss`` beside this file and registers every theme in ``THEMES`` (dark,
light, high contrast, 16 colours) and the user's own (``user_themes``: one TOML file per theme in
the ``themes`` folder beside the config file); ``--theme NAME``, ``theme = "NAME"`` in the config
file or ``:theme NAME`` picks one (Textual's built-in themes work too).
"""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from textual.theme import BUILTIN_THEMES, Theme

STYLESHEET = Path(__file__).with_name("default.tcss")

THEMES = (
    Theme(
        name="queue-console",
        primary="#4EA1D3",
        secondary="#7E57C2",
        accent="#FFB74D",
        warning="#FFB300",
        error="#EF5350",
        success="#66BB6A",
        foreground="#E0E0E0",
        background="#101418",
        surface="#161C22",
        panel="#1E2630",
        dark=True,
    ),
    Theme(
        name="queue-console-light",
        primary="#1565C0",
        secondary="#6A1B9A",
        accent="#E65100",
        warning="#F57F17",
        error="#C62828",
        success="#2E7D32",
        foreground="#1A1A1A",
        background="#FAFAFA",
        surface="#F0F0F0",
        panel="#E3E7EB",
        dark=False,
    ),
)
THEMES += (
    # black and white with saturated signal colours, for projectors and low vision
    Theme(
        name="queue-console-high-contrast",
        primary="#00B0FF",
        secondary="#FFFFFF",
        accent="#FFFF00",
        warning="#FFFF00",
        error="#FF3030",
        success="#00FF66",
        foreground="#FFFFFF",
        background="#000000",
        surface="#000000",
        panel="#202020",
        dark=True,
        luminosity_spread=0.3,
        text_alpha=1.0,
    ),
    # the terminal's own 16 colours (its palette decides the shades): for 16-colour terminals
    dataclasses.replace(BUILTIN_THEMES["ansi-dark"], name="queue-console-16"),
)
DEFAULT_THEME = "queue-console"

_THEME_KEYS = {f.name for f in dataclasses.fields(Theme)} - {"ansi"}


def user_themes(folder: Path) -> tuple[list[Theme], list[str]]:
    """The themes in ``folder/*.toml`` (``name = "mine"``, ``primary = "#..."``, ``dark = true``, ...,
    Textual's Theme fields) and one error line per file that is not one."""
    themes, errors = [], []
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            unknown = sorted(set(data) - _THEME_KEYS)
            if unknown:
                raise ValueError(f"unknown keys {', '.join(unknown)} (known: {', '.join(sorted(_THEME_KEYS))})")
            data.setdefault("name", path.stem)
            themes.append(Theme(**data))
        except (OSError, ValueError, TypeError) as exc:
            errors.append(f"theme file {path}: {exc}")
    return themes, errors
