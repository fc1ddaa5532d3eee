"""Grid expansion and the pre-run estimate (pure: no database, no model)."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.domain import BatchSpec, ModelRef, ModelSet, Provider, SamplingParams
from simulator.domain.errors import SpecError
from simulator.engine.grid import day_budgets, estimate, expand_grid
from simulator.engine.rng import derive_seed
from tests.plugins.batches import make_prison_experiment


def _spec(exp, **kw) -> BatchSpec:  # type: ignore[no-untyped-def]
    base = {
        "experiment_id": exp.id,
        "max_agents": {"Guard": 3, "Prisoner": 2},
        "days": 3,
        "every_day_count": True,
        "repeats": 2,
        "total_messages": 12,
        "seed": 11,
    }
    base.update(kw)
    return BatchSpec(**base)


def test_two_roles_every_combination_every_day_count_two_repeats_is_36_cells() -> None:
    exp = make_prison_experiment()
    cells = expand_grid(exp, _spec(exp))
    assert len(cells) == 36
    tuples = {(c.counts["Guard"], c.counts["Prisoner"], c.days, c.repeat) for c in cells}
    expected = {(g, p, d, r) for g in (1, 2, 3) for p in (1, 2) for d in (1, 2, 3) for r in (0, 1)}
    assert tuples == expected
    assert all(c.total_messages == 12 and c.factors == {} for c in cells)
    # every cell has its own seed
    assert len({c.seed for c in cells}) == 36


def test_a_two_level_factor_doubles_the_grid_to_72() -> None:
    exp = make_prison_experiment(with_goal_factor=True)
    cells = expand_grid(exp, _spec(exp))
    assert len(cells) == 72
    by_goal = {
        lv: [c for c in cells if c.factors == {"goal": lv}] for lv in ("escape", "privileges")
    }
    assert [len(v) for v in by_goal.values()] == [36, 36]
    tuples = {
        (c.counts["Guard"], c.counts["Prisoner"], c.days, c.repeat) for c in by_goal["escape"]
    }
    assert len(tuples) == 36


def test_only_maxima_and_exact_days() -> None:
    exp = make_prison_experiment()
    cells = expand_grid(exp, _spec(exp, every_combination=False, every_day_count=False))
    assert [(c.counts, c.days, c.repeat) for c in cells] == [
        ({"Guard": 3, "Prisoner": 2}, 3, 0),
        ({"Guard": 3, "Prisoner": 2}, 3, 1),
    ]


def test_roles_without_a_maximum_get_one_agent_and_role_names_match_case_insensitively() -> None:
    exp = make_prison_experiment()
    cells = expand_grid(exp, _spec(exp, max_agents={"guard": 2}, every_day_count=False, repeats=1))
    assert [c.counts for c in cells] == [{"Guard": 1, "Prisoner": 1}, {"Guard": 2, "Prisoner": 1}]


def test_unknown_role_in_maxima_is_a_spec_error_with_its_path() -> None:
    exp = make_prison_experiment()
    with pytest.raises(SpecError, match=r"batch\.max_agents\.Warden"):
        expand_grid(exp, _spec(exp, max_agents={"Warden": 2}))


def test_listed_factor_subset_and_missing_factors_run_every_level() -> None:
    exp = make_prison_experiment(with_goal_factor=True)
    one = expand_grid(exp, _spec(exp, factor_levels=[{"goal": "privileges"}], repeats=1))
    assert {c.factors["goal"] for c in one} == {"privileges"}
    assert len(one) == 18
    # an empty mapping leaves the factor free: every level, duplicates dropped
    both = expand_grid(exp, _spec(exp, factor_levels=[{}, {"goal": "escape"}], repeats=1))
    assert len(both) == 36
    with pytest.raises(SpecError, match=r"batch\.factors\.0\.goal"):
        expand_grid(exp, _spec(exp, factor_levels=[{"goal": "parole"}]))


def test_model_sets_multiply_the_grid() -> None:
    exp = make_prison_experiment()
    sets = [ModelSet(), ModelSet(default=ModelRef(provider=Provider.ollama, model="llama3"))]
    cells = expand_grid(exp, _spec(exp, model_sets=sets))
    assert len(cells) == 72
    assert {c.models.default.model for c in cells} == {"dryrun", "llama3"}


def test_a_cells_seed_depends_on_its_content_not_its_position() -> None:
    exp = make_prison_experiment()
    small = expand_grid(exp, _spec(exp, max_agents={"Guard": 1, "Prisoner": 1}))
    big = expand_grid(exp, _spec(exp))
    seeds_big = {(tuple(c.counts.values()), c.days, c.repeat): c.seed for c in big}
    for c in small:
        assert seeds_big[(tuple(c.counts.values()), c.days, c.repeat)] == c.seed
    # and on the base seed
    other = expand_grid(exp, _spec(exp, seed=12))
    assert {c.seed for c in other}.isdisjoint({c.seed for c in big})
    assert all(0 <= c.seed < 2**63 for c in big)
    assert big[0].seed != derive_seed(11, 0)  # not positional


def test_day_budgets_spread_the_remainder() -> None:
    assert day_budgets(20, 2) == [10, 10]
    assert day_budgets(20, 3) == [7, 7, 6]
    assert sum(day_budgets(7, 7)) == 7


def test_estimate_counts_turns_summaries_and_manager_calls() -> None:
    exp = make_prison_experiment()
    spec = _spec(exp, every_day_count=False, every_combination=False, repeats=1, days=2)
    est = estimate(exp, spec)
    # one conversation: 12 agent turns + 2 day summaries
    assert (est.conversations, est.llm_calls) == (1, 14)
    assert est.tokens > 0 and est.cost_usd is None
    auto = estimate(exp, spec.model_copy(update={"speaker_selection": "auto"}))
    assert auto.llm_calls == 14 + 12  # a manager call before every turn
    assert auto.tokens > est.tokens
    full = estimate(exp, _spec(exp))
    assert full.conversations == 36
    # days 1..3 -> 12 turns + d summaries per conversation, 12 conversations per day count
    assert full.llm_calls == 12 * ((12 + 1) + (12 + 2) + (12 + 3))


def test_estimate_cost_with_a_price_table() -> None:
    exp = make_prison_experiment()
    ref = ModelRef(provider=Provider.openai, model="gpt-4o-mini", params=SamplingParams())
    spec = _spec(exp, model_sets=[ModelSet(default=ref)], repeats=1)
    # OpenAI's own models have dated default prices (llm/prices.py); the table below wins
    assert (estimate(exp, spec).cost_usd or 0) > 0
    lab = ModelRef(provider=Provider.openai, model="lab-model", base_url="http://gpu:8000/v1")
    assert estimate(exp, _spec(exp, model_sets=[ModelSet(default=lab)])).cost_usd is None
    prices = {"gpt-4o-mini": {"input_per_1k": 0.001, "output_per_1k": 0.002}}
    est = estimate(exp, spec, prices)
    assert est.cost_usd is not None and est.cost_usd > 0
    double = {"openai:gpt-4o-mini": {"input_per_1k": 0.002, "output_per_1k": 0.004}}
    assert estimate(exp, spec, double).cost_usd == pytest.approx(2 * est.cost_usd, rel=1e-3)
    # a model missing from the table (and from the defaults): no honest total
    lab_spec = _spec(exp, model_sets=[ModelSet(default=lab)])
    other = {"other": {"input_per_1k": 1, "output_per_1k": 1}}
    assert estimate(exp, lab_spec, other).cost_usd is None
    # dryrun costs nothing
    assert estimate(exp, _spec(exp), prices).cost_usd == 0.0


def test_a_kind_the_registry_does_not_know_is_refused_by_name() -> None:
    from simulator.domain.errors import ConfigurationError

    exp = make_prison_experiment(kind="poker")
    spec = _spec(exp, every_combination=False, every_day_count=False, days=1, repeats=1, rounds=4)
    with pytest.raises(ConfigurationError, match=r"'poker'.*known kinds: dialogue, commons"):
        estimate(exp, spec)


def test_the_estimate_asks_the_kind_registry_it_is_handed() -> None:
    from simulator.engine.grid import tally_game_calls
    from simulator.engine.kinds import ROUND
    from simulator.scenarios.kind import Kind
    from simulator.scenarios.registry import KindRegistry

    async def no_run(*_: Any) -> None:
        return None

    def seven_per_round(e: Any, cell: Any, tally: Any) -> None:
        tally_game_calls(e, cell, tally, 7 * (cell.rounds or 1))

    registry = KindRegistry(
        [Kind("poker", "Poker", "a test game", ROUND, run=no_run, estimate=seven_per_round)]
    )
    exp = make_prison_experiment(kind="poker")
    spec = _spec(exp, every_combination=False, every_day_count=False, days=1, repeats=1, rounds=3)
    est = estimate(exp, spec, kinds=registry)
    assert est.llm_calls == 21 and est.conversations == 1
    # the calls are shared among the roles by their agents, each with its role's prompt
    assert est.tokens > 21 * 150
