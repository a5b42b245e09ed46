"""A LangChain chat model over a local GGUF file, through the prebuilt llama.cpp binding ``xllamacpp``.

Install it with ``pip install "memagent[gguf]"``; then ``Memory(path, llm="gguf:/models/qwen.gguf")``
or ``Memory(path, llm=GGUFChatModel(model_path=..., n_threads=1))``. The model is loaded
once, on the first call, and runs in this process (no server, no network). Structured
output uses llama.cpp's JSON-schema grammar, so a reply is always JSON of the schema's
shape (its content is checked by memagent all the same). One thread is the default:
on a busy 2-core machine two threads were over five times slower.

>>> GGUFChatModel(model_path="/nowhere.gguf").n_threads
1
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, ConfigDict, PrivateAttr

from memagent.errors import ConfigError

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def check_available(model_path: str) -> None:
    """``ConfigError`` unless the binding is installed and ``model_path`` is a GGUF file."""
    try:
        import xllamacpp  # noqa: F401
    except ImportError as exc:
        raise ConfigError('a gguf: model needs the llama.cpp binding: pip install "memagent[gguf]"') from exc
    path = Path(model_path)
    if not path.is_file():
        raise ConfigError(f"no GGUF model file at {model_path!r}")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ConfigError(f"{model_path!r} is not a GGUF file")


class GGUFChatModel(BaseChatModel):
    """A chat model for one local GGUF file (greedy decoding by default, so replies repeat)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    n_threads: int = 1
    n_ctx: int = 4096
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    _server: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "gguf"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx, "max_tokens": self.max_tokens,
                "temperature": self.temperature}

    def _load(self) -> Any:
        if self._server is None:
            check_available(self.model_path)
            import xllamacpp

            params = xllamacpp.CommonParams()
            params.model.path = self.model_path
            params.n_ctx = self.n_ctx
            params.n_parallel = 1
            params.cpuparams.n_threads = self.n_threads
            params.cpuparams_batch.n_threads = self.n_threads
            params.warmup = False
            params.verbosity = -1
            self._server = xllamacpp.Server(params)
        return self._server

    def complete(self, messages: Sequence[BaseMessage], **request: Any) -> dict[str, Any]:
        """One OpenAI-style chat completion (the binding's own request and reply dicts)."""
        body = {"messages": [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages],
                "max_tokens": self.max_tokens, "temperature": self.temperature, "seed": self.seed, **request}
        with self._lock:  # one slot: calls from several threads take turns
            reply = self._load().handle_chat_completions(body)
        if not isinstance(reply, dict) or "choices" not in reply:
            raise RuntimeError(f"llama.cpp returned no completion: {str(reply)[:300]}")
        return reply

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request = {k: v for k, v in kwargs.items() if k in ("response_format", "max_tokens", "temperature")}
        if stop:
            request["stop"] = stop
        reply = self.complete(messages, **request)
        text = reply["choices"][0]["message"].get("content") or ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))],
                          llm_output={"usage": reply.get("usage", {}), "timings": reply.get("timings", {})})

    def with_structured_output(self, schema: Any, *, include_raw: bool = False,
                               **kwargs: Any) -> Runnable[Any, Any]:
        """Replies constrained to ``schema`` (a pydantic class, or a JSON-schema dict) by a grammar;
        returns instances of the class, or dicts for a dict schema."""
        if include_raw:
            raise NotImplementedError("include_raw is not supported by GGUFChatModel")
        is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
        json_schema = schema.model_json_schema() if is_model else dict(schema)
        response_format = {"type": "json_schema", "json_schema": {"name": "reply", "schema": json_schema}}

        def parse(message: BaseMessage) -> Any:
            data = json.loads(str(message.content))
            return schema.model_validate(data) if is_model else data

        return self.bind(response_format=response_format) | RunnableLambda(parse)
