"""A loopback server speaking OpenAI's and Anthropic's wire formats, with fault injection, for tests."""

from .server import FakeAPI, Faults

__all__ = ["FakeAPI", "Faults"]
