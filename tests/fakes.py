"""Fakes for what cannot run in a test: a scripted chat model (a real ``BaseChatModel``), a hashing embedder."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class ScriptedChatModel(BaseChatModel):
    """Replies with ``respond(messages)``; records every prompt it was given."""

    respond: Callable[[Sequence[BaseMessage]], str]
    prompts: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        self.prompts.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.respond(messages)))])


def scripted(respond: Callable[[Sequence[BaseMessage]], str] | str) -> ScriptedChatModel:
    """A fake model replying with ``respond`` (a fixed string or a function of the prompt)."""
    fn = respond if callable(respond) else (lambda _messages: respond)
    return ScriptedChatModel(respond=fn, prompts=[])


class HashEmbedder:
    """A deterministic bag-of-words embedder (hashed words, 64 dimensions), for tests where the
    meaning of vectors does not matter and a process must start fast (no model load)."""

    name = "hash-64"
    dimension = 64

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode("utf-8", "surrogatepass")) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


class ScriptedToolModel(BaseChatModel):
    """A real chat model that makes the tool call ``plan(human text, tool results so far)`` returns,
    or, when that is None, answers with the last tool result."""

    plan: Any

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedToolModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        human = [m for m in messages if isinstance(m, HumanMessage)][-1]
        results = [str(m.content) for m in messages[messages.index(human):] if isinstance(m, ToolMessage)]
        call = self.plan(str(human.content), results)
        reply = AIMessage(results[-1] if results else "") if call is None else AIMessage(
            "", tool_calls=[{"name": call[0], "args": call[1], "id": f"call-{len(messages)}"}])
        return ChatResult(generations=[ChatGeneration(message=reply)])
