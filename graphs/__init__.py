"""Workflows: LangGraph graphs that wire memagent's mechanisms and policies.

Installed as ``memagent.graphs``: ``ingest`` (validate -> normalise -> embed ->
write), ``search`` (plan -> retrieve -> fuse -> expand), ``maintain``
(consolidate: load -> extract -> embed -> absorb -> link -> summarise -> write;
forget: assess -> apply), ``answer`` (route -> retrieve -> assemble -> answer ->
trace), ``feedback`` (load -> rate -> learn -> correct -> write) and
``chat_agent`` (recall -> respond -> remember), the one listed in ``langgraph.json``.
"""
