"""Every number of the public-goods game, as parameters of an experiment (``Experiment.game``).

The defaults are Fehr and Gächter's design: groups of four (the batch's agent counts), 20 tokens a
round, the pool multiplied by 1.6 (a marginal per-capita return of 0.4), 10 rounds; with
punishment, a deduction point costs its assigner 1 token and its receiver 3 (Fehr and Gächter
2002), at most 10 points per member and round. A batch can vary any parameter per conversation
through a study factor of the same name (``punishment: [on, off]``), see :func:`params_for`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.domain.errors import SpecError

_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


class PublicGoodsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    rounds: int = Field(default=10, ge=1, le=1000, description="rounds played")
    endowment: int = Field(
        default=20, ge=1, le=1000, description="tokens each member receives every round"
    )
    multiplier: float = Field(
        default=1.6,
        gt=1.0,
        le=100.0,
        description=(
            "the pool is multiplied by this and shared equally; between 1 and the number of "
            "members, so contributing pays the group but not the contributor"
        ),
    )
    punishment: bool = Field(
        default=False,
        description="a punishment stage after each contribution stage (deduction points)",
    )
    punishment_cost: float = Field(
        default=1.0, ge=0.0, le=100.0, description="tokens a deduction point costs its assigner"
    )
    punishment_effect: float = Field(
        default=3.0,
        ge=0.0,
        le=100.0,
        description="tokens a deduction point takes from its receiver",
    )
    max_points: int = Field(
        default=10, ge=1, le=100, description="deduction points one member may give another a round"
    )
    identified: bool = Field(
        default=False,
        description=(
            "members see each other by name; off: anonymous, under letters shuffled every round"
        ),
    )
    communication: bool = Field(
        default=False,
        description="before contributing, each member may post one message to the group",
    )
    message_words: int = Field(
        default=60, ge=1, le=1000, description="a message is cut to this many words"
    )
    history_rounds: int = Field(
        default=3, ge=0, le=1000, description="earlier rounds each member is reminded of"
    )
    max_reasks: int = Field(
        default=2, ge=0, le=10, description="re-asks of an unusable answer before its default"
    )

    def marginal_return(self, members: int) -> float:
        """The marginal per-capita return m / n: what one contributed token gives each member."""
        return self.multiplier / members


def load_params(
    game: dict[str, Any] | None, overrides: dict[str, Any] | None = None
) -> PublicGoodsParams:
    """Validate ``Experiment.game`` (plus overrides) into parameters, or raise SpecError."""
    data = {**(game or {}), **(overrides or {})}
    try:
        return PublicGoodsParams.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"game.{'.'.join(str(p) for p in e['loc']) or 'game'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"Invalid public-goods parameters: {problems}") from None


def _coerce_level(name: str, level: str) -> Any:
    """A factor level (text) as the value of parameter ``name`` (on/off for a switch)."""
    text = level.strip()
    if PublicGoodsParams.model_fields[name].annotation is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise SpecError(f"factor {name!r}: level {level!r} is not on/off")
    return text


def params_for(
    game: dict[str, Any] | None, factors: dict[str, str] | None = None, rounds: int | None = None
) -> PublicGoodsParams:
    """The parameters of one conversation: the experiment's, with every study factor whose name
    is a parameter (``punishment``, ``multiplier``, ...) set to the cell's level, and the cell's
    round count."""
    overrides: dict[str, Any] = {}
    for name, level in (factors or {}).items():
        key = name.strip().replace(" ", "_").lower()
        if key in PublicGoodsParams.model_fields:
            overrides[key] = _coerce_level(key, level)
    if rounds is not None:
        overrides["rounds"] = rounds
    return load_params(game, overrides)


def check_group(params: PublicGoodsParams, members: int) -> None:
    """SpecError unless ``members`` make the game a social dilemma: at least two, and a
    multiplier below their number (else contributing pays the contributor too)."""
    if members < 2:
        raise SpecError(f"a public-goods game needs at least 2 members (this one has {members})")
    if params.multiplier >= members:
        raise SpecError(
            f"game.multiplier: {params.multiplier:g} must be below the number of members "
            f"({members}); with m >= n contributing pays the contributor, and there is no dilemma"
        )


__all__ = ["PublicGoodsParams", "check_group", "load_params", "params_for"]
