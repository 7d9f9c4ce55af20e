"""The embedded engine: a vLLM-V1-like serving engine for machines without a GPU.

``core`` holds the scheduler and memory rules, ``perf`` the step-time and memory models,
``server`` the HTTP face, and ``__main__`` the ``scoot-engine serve`` command.
"""

from scoot.engine.embedded.core import EngineArgs, EngineStartupError, SimRequest, simulate

__all__ = ["EngineArgs", "EngineStartupError", "SimRequest", "simulate"]
