"""Themes shipped with queue-console: Textual theme definitions plus the app stylesheet.

The app loads ``default.tcss`` beside this file and registers every theme in ``THEMES``;
``--theme NAME`` picks one (Textual's built-in themes work too).
"""
from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

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
DEFAULT_THEME = "queue-console"
