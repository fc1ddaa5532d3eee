"""Placeholder grammar and prompt rendering (inflect): pure functions.

The grammar is documented in docs/roles.md.
"""

from simulator.roles.render import (
    RenderContext,
    agent_names,
    render,
    render_sections,
    render_starting_message,
    render_summarizer_prompt,
    render_system_prompt,
)
from simulator.roles.validate import PlaceholderIssue, validate_experiment, validate_text

__all__ = [
    "PlaceholderIssue",
    "RenderContext",
    "agent_names",
    "render",
    "render_sections",
    "render_starting_message",
    "render_summarizer_prompt",
    "render_system_prompt",
    "validate_experiment",
    "validate_text",
]
