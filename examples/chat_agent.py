"""memagent inside a chat agent: python examples/chat_agent.py [ollama:llama3.2] (no spec: an offline echo model)."""
import sys
import tempfile

from langchain_core.language_models import SimpleChatModel

from memagent import Memory
from memagent.graphs.chat_agent import build_chat_agent


class Echo(SimpleChatModel):  # offline stand-in for a real model: echoes the user's message
    @property
    def _llm_type(self) -> str:
        return "echo"

    def _call(self, messages, stop=None, run_manager=None, **kwargs) -> str:
        return f"(echo) {messages[-1].content}"


if len(sys.argv) > 1:
    from langchain.chat_models import init_chat_model  # pip install langchain langchain-ollama
model = init_chat_model(sys.argv[1]) if len(sys.argv) > 1 else Echo()
with tempfile.TemporaryDirectory() as data_dir, Memory(data_dir) as memory:
    agent = build_chat_agent(memory, model)
    for session, text in [("monday", "I adopted a dog named Rex."), ("friday", "What is my dog called?")]:
        out = agent.invoke({"user_id": "alice", "session_id": session, "messages": [("user", text)]})
        print(f"user: {text}\nagent: {out['messages'][-1].content}\nrecalled: {out['memories']}\n")
