"""LLM Interaction Simulator: multi-agent LLM social experiments, stored in MongoDB."""

__version__ = "0.1.0"
