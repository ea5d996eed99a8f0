"""queue-console: the Textual TUI, the headless CLI, config and the (later) action layer."""
__version__ = "0.1.0"
