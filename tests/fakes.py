"""A scripted chat model that subclasses LangChain's real ``BaseChatModel``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
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
