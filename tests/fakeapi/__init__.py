"""A loopback server speaking OpenAI's and Anthropic's wire formats, with fault injection, for tests."""

from .agent import AgentReply, AgentView, Turn, default_agent
from .server import FakeAPI, Faults

__all__ = ["AgentReply", "AgentView", "FakeAPI", "Faults", "Turn", "default_agent"]
