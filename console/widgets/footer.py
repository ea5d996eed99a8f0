"""The footer of every screen: the binding table's keys, with ``?`` (help) first so that it is on
screen at any width (at 80 columns the keys past the edge are cut; ``?`` lists them all)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: actions shown before the screen's own keys, in this order
FIRST = ("help",)


class KeyFooter(Footer):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("compact", True)
        kwargs.setdefault("show_command_palette", False)
        super().__init__(**kwargs)

    def compose(self) -> ComposeResult:
        items = list(super().compose())

        def rank(item) -> int:
            action = getattr(item, "action", None) if isinstance(item, FooterKey) else None
            return FIRST.index(action) if action in FIRST else len(FIRST)

        yield from sorted(items, key=rank)  # stable: the rest keep the table's order
