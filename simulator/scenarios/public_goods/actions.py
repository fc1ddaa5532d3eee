"""The answers a member gives: a contribution, deduction points, a message. Each is a JSON object
validated against a schema built for the round (the endowment bounds the contribution; the
others' labels and the points cap bound the deductions)."""

from __future__ import annotations

import functools
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field, create_model
from typing_extensions import TypedDict


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Contribution(_Answer):
    contribution: int = Field(ge=0, description="tokens put into the group project")
    reason: str = Field(default="", description="one short sentence")


class Deductions(_Answer):
    points: dict[str, int] = Field(default_factory=dict)
    reason: str = Field(default="", description="one short sentence")


class Post(_Answer):
    message: str = Field(default="", description="your message to the group (empty: none)")


@functools.lru_cache(maxsize=256)
def contribution_schema(endowment: int) -> type[Contribution]:
    """A contribution of 0 to ``endowment`` tokens."""
    model: type[Contribution] = create_model(
        "Contribution",
        __base__=Contribution,
        contribution=(
            int,
            Field(ge=0, le=endowment, description=f"tokens put into the project, 0 to {endowment}"),
        ),
    )
    return model


@functools.lru_cache(maxsize=1024)
def deductions_schema(labels: tuple[str, ...], max_points: int) -> type[Deductions]:
    """Deduction points (0 to ``max_points``) for each of the other members, by label; a label
    left out gets none."""
    fields = {label: Annotated[int, Field(ge=0, le=max_points)] for label in labels}
    points: Any = TypedDict("Points", fields, total=False)  # type: ignore[misc]
    cast(Any, points).__pydantic_config__ = ConfigDict(extra="forbid")
    model: type[Deductions] = create_model(
        "Deductions",
        __base__=Deductions,
        points=(
            points,
            Field(
                default_factory=dict,
                description=f"deduction points per member, 0 to {max_points} each",
            ),
        ),
    )
    return model


__all__ = ["Contribution", "Deductions", "Post", "contribution_schema", "deductions_schema"]
