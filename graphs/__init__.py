"""Workflows: LangGraph graphs that wire memagent's mechanisms and policies.

Installed as ``memagent.graphs``: ``ingest`` (validate -> normalise -> embed ->
write) and ``search`` (plan -> retrieve -> fuse -> expand).
"""
