"""Pluggable readers for queue systems (BullMQ first). Plain Python: no Textual import here.

Start at ``backends.registry.open_readers`` and the contract in ``backends.contract``.
"""
