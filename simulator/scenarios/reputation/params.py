"""Every number of the reputation games, as parameters of an experiment (``Experiment.game``).

Numbers default to the published reference system's (RepuNet, arXiv 2505.05029) where it has one;
where it has none (it never turns credibility into a number, and its seed networks are fixed
files) the default is ours and says so in its description. Where the reference's design leans on
the outcome (its personas, its wording, its update inputs) the default is neutral and the
reference's choice an explicit option; ``preset: repunet`` selects all of them at once (see
``preset_values`` and docs/reputation.md, "Neutral default and the repunet preset"). A batch can
vary any parameter per conversation through a study factor of the same name (``gossip: [on,
off]``, ``game: [pd, investment]``), see :func:`params_for`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulator.domain.errors import SpecError
from simulator.scenarios.presets import apply_preset

Game = Literal["investment", "pd", "signup"]
Preset = Literal["neutral", "repunet"]
CREDIBILITY_LEVELS = ("very_uncredible", "uncredible", "neutral", "credible", "very_credible")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PDPayoffs(_Params):
    """The prisoner's dilemma table (T > R > P > S)."""

    reward: float = Field(default=3.0, description="R: both cooperate, each gets")
    temptation: float = Field(default=5.0, description="T: I defect, the other cooperates")
    sucker: float = Field(default=0.0, description="S: I cooperate, the other defects")
    punishment: float = Field(default=1.0, description="P: both defect, each gets")


def _default_weights() -> dict[str, float]:
    return {
        "very_uncredible": 0.0,
        "uncredible": 0.25,
        "neutral": 0.5,
        "credible": 0.75,
        "very_credible": 1.0,
    }


def preset_values(preset: str, game: str) -> dict[str, Any]:
    """What a preset sets for ``game`` (every parameter it does not name keeps its default)."""
    if preset != "repunet":
        return {}
    return {
        "framing": "repunet",
        "personas": "repunet",
        "update_after_refusal": False,
        "signup_update_inputs": "chat_and_ties",
        "gossip_timing": "after_games",
        "history_window": {"pd": 5, "investment": 1, "signup": 1}[game],
        "temperature": 0.0,
        "top_p": 1.0,
    }


class ReputationParams(_Params):
    """The parameters of one reputation experiment (stored in ``Experiment.game``)."""

    preset: Preset = Field(
        default="neutral",
        description="neutral: our defaults; repunet: the published design (its personas per "
        "game, wording, update inputs, history windows, temperature 0); parameters you set keep "
        "your value",
    )
    game: Game = Field(default="investment", description="investment | pd | signup")
    population: int = Field(default=20, ge=2, le=500, description="number of agents")
    steps: int = Field(default=10, ge=1, description="steps per run (a batch's rounds override)")
    start_resources: float = Field(default=10.0, ge=0, description="resources of every agent")
    k: float = Field(default=2.0, ge=0, description="investment multiplier of invested units")
    pd_payoffs: PDPayoffs = Field(default_factory=PDPayoffs)
    partner_choice_probability: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="chance that a chooser picks its partner among its connections by asking its "
        "model (else a random unmatched partner)",
    )
    blacklist_size: int = Field(default=5, ge=0, description="blacklist length; oldest expires")
    blacklist_blocks_pd: bool = Field(
        default=False,
        description="a blacklisted pair also refuses a prisoner's dilemma game (the reference "
        "ignores the blacklist in PD)",
    )
    gossip_depth: int = Field(default=2, ge=1, description="hops a gossip may travel")
    credibility_weights: dict[str, float] = Field(
        default_factory=_default_weights,
        description="weight of a gossip on the listener's record per credibility level (ours: "
        "the reference only names the level in the prompt)",
    )
    reputation: bool = Field(default=True, description="treatment: reputation records on")
    gossip: bool = Field(default=True, description="treatment: gossip on")
    public_observation: bool | None = Field(
        default=None,
        description="treatment: evaluations are broadcast to everyone and re-rated every "
        "observation_period steps (needs reputation on); default (null): as the reference, on "
        "only for investment with reputation and gossip on",
    )
    observation_period: int = Field(default=5, ge=1, description="re-rating period of observation")
    signup_period: int = Field(default=5, ge=1, description="sign-up rounds at steps 1, 1+p, ...")
    persona_rewrite: bool = Field(
        default=True, description="rewrite an agent's persona after each direct update"
    )
    history_window: int = Field(
        default=5,
        ge=0,
        description="own past games shown in prompts (the reference: 5 in pd, 1 in investment)",
    )
    framing: Literal["neutral", "repunet"] = Field(
        default="neutral",
        description="repunet: the reference's wording (both strategic insights in pd, 'people "
        "prefer partners of good reputation', withholding gossip discouraged, sign-up chats about "
        "social welfare); neutral: the rules only",
    )
    update_after_refusal: bool = Field(
        default=True,
        description="investment: update reputations after a refused investment too (the "
        "reference updates only after an accepted one)",
    )
    signup_update_inputs: Literal["signup_choice", "chat_and_ties"] = Field(
        default="signup_choice",
        description="what a sign-up chat's reputation updates see: the partner's sign-up choice, "
        "or the reference's inputs (own chat success rate against the population's mean; the "
        "partner's two-way ties against the mean)",
    )
    gossip_timing: Literal["after_pair", "after_games"] = Field(
        default="after_pair",
        description="pd: gossip right after each pair's game, or after all games of the step "
        "(the reference)",
    )
    fallback_play: Literal["void", "default"] = Field(
        default="void",
        description="an unusable move, investment or sign-up answer: void (a non-choice that "
        "decides nothing: a pd game with one scores 0/0 as the reference's error, an investment "
        "is not made, a sign-up is not counted) or default (play the documented default: "
        "cooperate, refuse, do not join); either way it is recorded as a fallback",
    )
    temperature: float | None = Field(
        default=None,
        ge=0,
        le=2,
        description="sampling temperature of every agent's calls (null: the model's own; the "
        "reference: 0)",
    )
    top_p: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="top_p of every agent's calls (null: the model's own; the reference: 1)",
    )
    initial_connection_probability: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="chance of each directed tie at step 0 (ours: the reference ships fixed seeds)",
    )
    chat_pairs: int | None = Field(
        default=None, ge=0, description="sign-up chat pairs per step (default population // 2)"
    )
    personas: Literal["builtin", "repunet"] | list[dict[str, str]] = Field(
        default="builtin",
        description="'builtin' (25 varied short personas), 'repunet' (the reference's design per "
        "game: pd half altruistic and half rational, sign-up half communal and half rational, "
        "investment all rational) or a list of {name, persona[, type]} (imported from a file)",
    )
    max_reasks: int = Field(default=2, ge=0, description="re-asks of an invalid answer")

    @model_validator(mode="after")
    def _preset(self) -> ReputationParams:
        apply_preset(self, preset_values(self.preset, self.game))
        return self

    @model_validator(mode="after")
    def _check(self) -> ReputationParams:
        missing = [lv for lv in CREDIBILITY_LEVELS if lv not in self.credibility_weights]
        unknown = [lv for lv in self.credibility_weights if lv not in CREDIBILITY_LEVELS]
        if missing or unknown:
            raise ValueError(
                f"credibility_weights needs exactly the levels {', '.join(CREDIBILITY_LEVELS)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
            )
        for level, w in self.credibility_weights.items():
            if not 0.0 <= w <= 1.0:
                raise ValueError(f"credibility weight of {level} must be within 0..1, got {w}")
        if isinstance(self.personas, list) and len(self.personas) < self.population:
            raise ValueError(
                f"{len(self.personas)} persona(s) given for a population of {self.population}"
            )
        return self

    @property
    def roles(self) -> tuple[str, ...]:
        """The game roles reputation is kept for."""
        return {
            "investment": ("investor", "trustee"),
            "pd": ("player",),
            "signup": ("resident",),
        }[self.game]

    @property
    def observation_on(self) -> bool:
        if self.public_observation is None:
            return self.game == "investment" and self.reputation and self.gossip
        return self.public_observation and self.reputation


_TRUE = {"on", "yes", "true", "1", "y"}
_FALSE = {"off", "no", "false", "0", "n"}


def _coerce_level(name: str, level: str) -> Any:
    """A factor level (text) as the value of parameter ``name``."""
    field = ReputationParams.model_fields[name]
    text = level.strip()
    if field.annotation in (bool, bool | None):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise SpecError(f"factor {name!r}: level {level!r} is not on/off")
    return text


def load_params(
    game: dict[str, Any] | None, overrides: dict[str, Any] | None = None
) -> ReputationParams:
    """Validate ``Experiment.game`` (plus overrides) into parameters, or raise SpecError."""
    data = {**(game or {}), **(overrides or {})}
    data.pop("rounds", None)  # the batch grid's name for steps; cell.rounds carries it
    try:
        return ReputationParams.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"game.{'.'.join(str(p) for p in e['loc']) or 'game'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"Invalid reputation parameters: {problems}") from None


def params_for(
    game: dict[str, Any] | None, factors: dict[str, str] | None = None, steps: int | None = None
) -> ReputationParams:
    """The parameters of one conversation: the experiment's, with every study factor whose name
    is a parameter (``reputation``, ``gossip``, ``game``, ...) set to the cell's level, and the
    cell's step count."""
    overrides: dict[str, Any] = {}
    for name, level in (factors or {}).items():
        key = name.strip().replace(" ", "_").lower()
        if key in ReputationParams.model_fields:
            overrides[key] = _coerce_level(key, level)
    if steps is not None:
        overrides["steps"] = steps
    return load_params(game, overrides)


__all__ = [
    "CREDIBILITY_LEVELS",
    "Game",
    "PDPayoffs",
    "ReputationParams",
    "load_params",
    "params_for",
    "preset_values",
]
