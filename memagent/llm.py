"""The optional chat model: one place that prompts it, parses its output and validates it.

Any LangChain ``BaseChatModel`` works. A structured answer is asked for with the
model's own structured-output support when it has one, else with a JSON prompt
built from the pydantic schema; either way the result is validated, and output
that fails validation returns ``None`` so the caller falls back to its LLM-free
path. Calls, failures and the outputs a content check rejected are counted per
reason (``rejected``) and logged at WARNING, at most once a minute per reason.

>>> adapter = ChatAdapter(None)
>>> adapter.enabled, adapter.calls
(False, 0)
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from memagent.errors import ConfigError

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
WARN_EVERY_S = 60.0
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.M)


def parse_json(text: str, schema: type[M]) -> M | None:
    """The first JSON object in ``text`` validated against ``schema``, or None."""
    cleaned = _FENCE.sub("", text.strip())
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return schema.model_validate(json.loads(cleaned[start:end + 1]))
    except (ValueError, ValidationError):
        return None


def chat_model(value: Any) -> Any | None:
    """The chat model ``Memory(llm=...)`` names: None, a model object (anything with ``invoke``),
    a ``"gguf:/path/model.gguf"`` local model, or a ``"provider:model"`` string made by LangChain's
    ``init_chat_model``; ``ConfigError`` if it cannot be made, at construction rather than at the
    first call."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().startswith("gguf:"):
        from memagent.llm_gguf import GGUFChatModel, check_available

        path = value.strip()[len("gguf:"):]
        check_available(path)
        return GGUFChatModel(model_path=path)
    if isinstance(value, str):
        if not value.strip():
            raise ConfigError("llm must name a model, such as 'openai:gpt-4o-mini' or 'ollama:llama3.2'")
        try:
            from langchain.chat_models import init_chat_model
        except ImportError as exc:
            raise ConfigError(f"llm={value!r} names a model: install memagent[llm] (the langchain package), "
                              "or pass a chat model object") from exc
        try:
            return init_chat_model(value.strip())
        except Exception as exc:  # a missing provider package, an unknown provider, a missing API key
            raise ConfigError(f"cannot make the chat model {value!r}: {exc}") from exc
    if not callable(getattr(value, "invoke", None)):
        raise ConfigError(f"llm must be a LangChain chat model or a 'provider:model' string, "
                          f"got {type(value).__name__}")
    return value


class ChatAdapter:
    """Wraps an optional chat model; counts calls, invalid outputs and errors."""

    def __init__(self, model: Any | None) -> None:
        self.model = model
        self.calls = 0
        self.failures = 0
        self.rejected: Counter[str] = Counter()
        self._warned: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.model is not None

    def reject(self, reason: str, detail: str = "") -> None:
        """Count an output a check rejected or overruled; WARNING at most once a minute per reason."""
        with self._lock:
            self.rejected[reason] += 1
            total, now = self.rejected[reason], time.monotonic()
            quiet = now - self._warned.get(reason, -WARN_EVERY_S) < WARN_EVERY_S
            if not quiet:
                self._warned[reason] = now
        if not quiet:
            log.warning("chat model: %s%s (%d so far; the LLM-free path was used)", reason,
                        f": {detail}" if detail else "", total)

    def _count(self, failed: bool) -> None:
        with self._lock:
            self.calls += 1
            self.failures += int(failed)

    def text(self, system: str, user: str) -> str | None:
        """The model's reply as text, or None if there is no model or the call failed."""
        if self.model is None:
            return None
        from langchain_core.messages import HumanMessage, SystemMessage

        try:
            reply = self.model.invoke([SystemMessage(system), HumanMessage(user)])
        except Exception as exc:  # a remote model may fail in any way; the caller falls back
            self._count(True)
            self.reject("call failed", repr(exc)[:200])
            return None
        content = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        self._count(False)
        return content

    def structured(self, schema: type[M], system: str, user: str, shown: type[BaseModel] | None = None) -> M | None:
        """An answer validated against ``schema``, or None (no model, failed call, bad output).

        ``shown`` is the schema the model is asked to fill, when it is stricter than the one
        its reply is read with (so that one bad item is dropped by the caller, not the reply)."""
        if self.model is None:
            return None
        shown = shown or schema
        try:
            runnable = self.model.with_structured_output(shown if shown is schema else shown.model_json_schema())
        except (NotImplementedError, AttributeError, ValueError):
            runnable = None
        if runnable is not None:
            return self._structured_native(runnable, schema, system, user)
        prompt = (f"{system}\n\nReply with one JSON object and nothing else, matching this JSON "
                  f"schema:\n{json.dumps(shown.model_json_schema())}")
        reply = self.text(prompt, user)
        if reply is None:
            return None
        parsed = parse_json(reply, schema)
        if parsed is None:
            with self._lock:
                self.failures += 1
            self.reject("invalid reply", schema.__name__)
        return parsed

    def _structured_native(self, runnable: Any, schema: type[M], system: str, user: str) -> M | None:
        from langchain_core.messages import HumanMessage, SystemMessage

        try:
            result = runnable.invoke([SystemMessage(system), HumanMessage(user)])
            parsed = result if isinstance(result, schema) else schema.model_validate(result)
        except Exception as exc:  # parse errors and transport errors alike fall back
            self._count(True)
            self.reject("invalid reply", schema.__name__)
            log.debug("structured output failed: %r", exc)
            return None
        self._count(False)
        return parsed
