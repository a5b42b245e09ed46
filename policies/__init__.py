"""Decisions: pure functions of (records, now) -> decisions, with no I/O.

Installed as ``memagent.policies``. Each module decides one thing; the graphs in
``memagent.graphs`` call them and do the reading and writing.
"""
