"""The stats table's coefficients and standard errors match values computed independently with
numpy (normal equations, Newton-Raphson, the sandwich formulas written out here) on a small data
set kept in this file, and agree with statsmodels' own robust and clustered covariances where it
has them; a planted factor effect is recovered from a synthetic data set; a model that cannot be
estimated says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from simulator.analysis.stats import ModelError, design, fit_model, latex, markdown
from simulator.analysis.study import Measure, Study, StudyError, predictors

# 24 conversations: two goals x three personas x one or two guards, six clusters of four.
GOAL = ["Escape", "Yard Time"] * 12
PERSONA = (["calm"] * 2 + ["rude"] * 2 + ["none"] * 2) * 4
GUARDS = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2] * 2
SCORE = [
    2.5, 4.3, 1.23, 2.11, 2.05, 3.01, 3.06, 5.84, 1.51, 2.88, 3.49, 4.86,
    2.61, 3.07, 1.47, 3.7, 1.16, 3.54, 1.1, 3.21, 0.16, 3.26, 1.73, 4.77,
]  # fmt: skip
YES = [1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1]
SHARE = [
    0.44, 0.57, 0.55, 0.59, 0.25, 0.68, 0.61, 0.72, 0.43, 0.56, 0.63, 0.97,
    0.32, 0.7, 0.18, 0.49, 0.25, 0.58, 0.5, 0.89, 0.5, 0.38, 0.41, 0.85,
]  # fmt: skip
N = 24


def data() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "conversation_id": [f"c{i:02d}" for i in range(N)],
            "cluster": [f"g{i // 4}" for i in range(N)],
            "factor_goal": pd.array(GOAL, dtype="string"),
            "factor_persona": pd.array(PERSONA, dtype="string"),
            "count_guard": pd.array(GUARDS, dtype="Int64"),
            "score": pd.array(SCORE, dtype="Float64"),
            "yes": pd.array([bool(v) for v in YES], dtype="boolean"),
            "share": pd.array(SHARE, dtype="Float64"),
        }
    )


def fitted(outcome: str, model: str, se: str, *, binary: bool = False) -> pd.DataFrame:
    frame = data()
    study = Study(
        pd.DataFrame(), pd.DataFrame(), levels={"factor_persona": ["calm", "rude", "none"]}
    )
    preds = predictors(study, frame, ["goal", "persona", "guard"])
    cluster = "cluster" if se == "cluster" else None
    d = design(Measure(outcome, outcome, "conversation", frame, binary), preds, cluster=cluster)
    assert [t.name for t in d.terms] == [
        "(intercept)",
        "goal[Yard Time]",
        "persona[rude]",
        "persona[none]",
        "guard",
    ]
    return fit_model(d, outcome=outcome, model=model, se=se, binary=binary).table


# --------------------------------------------------------------------------- by hand


def X() -> np.ndarray:
    goal = np.array(GOAL) == "Yard Time"
    persona = np.array(PERSONA)
    return np.column_stack(
        [np.ones(N), goal, persona == "rude", persona == "none", np.array(GUARDS)]
    ).astype(float)


GROUPS = np.array([i // 4 for i in range(N)])


def meat(x: np.ndarray, e: np.ndarray, kind: str, h: np.ndarray) -> np.ndarray:
    n, k = x.shape
    if kind == "cluster":
        total = np.zeros((k, k))
        groups = GROUPS
        for g in np.unique(groups):
            rows = groups == g
            s = (x[rows] * e[rows, None]).sum(axis=0)
            total += np.outer(s, s)
        G = len(np.unique(GROUPS))
        return total * G / (G - 1) * (n - 1) / (n - k)
    w = {
        "HC0": e**2,
        "HC1": e**2 * n / (n - k),
        "HC2": e**2 / (1 - h),
        "HC3": e**2 / (1 - h) ** 2,
    }[kind]
    return sum(w[i] * np.outer(x[i], x[i]) for i in range(n))


def ols_by_hand(kind: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = X(), np.array(SCORE)
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    e = y - x @ beta
    h = np.array([x[i] @ xtx_inv @ x[i] for i in range(N)])
    if kind == "classical":
        cov = xtx_inv * (e @ e) / (N - x.shape[1])
    else:
        cov = xtx_inv @ meat(x, e, kind, h) @ xtx_inv
    return beta, np.sqrt(np.diag(cov))


def logit_by_hand(y: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Newton-Raphson on the (quasi-)log-likelihood, then the sandwich with W = p(1 - p)."""
    x = X()
    beta = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-x @ beta))
        step = np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]), x.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-12:
            break
    p = 1 / (1 + np.exp(-x @ beta))
    w = p * (1 - p)
    bread = np.linalg.inv(x.T @ (x * w[:, None]))
    h = np.array([w[i] * x[i] @ bread @ x[i] for i in range(N)])
    cov = bread if kind == "classical" else bread @ meat(x, y - p, kind, h) @ bread
    return beta, np.sqrt(np.diag(cov))


@pytest.mark.parametrize("se", ["classical", "HC0", "HC1", "HC2", "HC3", "cluster"])
def test_ols_coefficients_and_standard_errors(se: str) -> None:
    table = fitted("score", "ols", se)
    beta, std = ols_by_hand(se)
    assert table["estimate"].to_numpy(dtype=float) == pytest.approx(beta, rel=1e-9)
    assert table["std_error"].to_numpy(dtype=float) == pytest.approx(std, rel=1e-9)
    # statsmodels' own covariances agree (an independent implementation)
    ols = sm.OLS(np.array(SCORE), X())
    if se == "cluster":
        theirs = ols.fit(cov_type="cluster", cov_kwds={"groups": GROUPS})
        assert table["clusters"].iloc[0] == 6
    elif se == "classical":
        theirs = ols.fit()
    else:
        theirs = ols.fit(cov_type=se)
    assert table["std_error"].to_numpy(dtype=float) == pytest.approx(theirs.bse, rel=1e-9)
    assert table["n"].iloc[0] == N and set(table["model"]) == {"ols"}


def test_ols_t_tests_use_the_residual_degrees_of_freedom() -> None:
    from scipy import stats

    table = fitted("score", "ols", "HC1").set_index("term")
    row = table.loc["goal[Yard Time]"]
    t = row["estimate"] / row["std_error"]
    assert row["statistic"] == pytest.approx(t)
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), N - 5))
    q = stats.t.ppf(0.975, N - 5)
    assert row["conf_low"] == pytest.approx(row["estimate"] - q * row["std_error"])
    clustered = fitted("score", "ols", "cluster").set_index("term").loc["goal[Yard Time]"]
    q = stats.t.ppf(0.975, 6 - 1)  # G - 1 with clusters
    assert clustered["conf_high"] == pytest.approx(
        clustered["estimate"] + q * clustered["std_error"]
    )


@pytest.mark.parametrize("se", ["classical", "HC0", "HC1", "HC2", "HC3", "cluster"])
def test_logit_coefficients_odds_ratios_and_standard_errors(se: str) -> None:
    table = fitted("yes", "auto", se, binary=True)
    assert set(table["model"]) == {"logit"}
    beta, std = logit_by_hand(np.array(YES, dtype=float), se)
    assert table["estimate"].to_numpy(dtype=float) == pytest.approx(beta, rel=1e-6)
    assert table["std_error"].to_numpy(dtype=float) == pytest.approx(std, rel=1e-6)
    assert table["odds_ratio"].to_numpy(dtype=float) == pytest.approx(np.exp(beta), rel=1e-6)
    low = beta - 1.959963984540054 * std  # normal quantiles for the logit models
    assert table["or_conf_low"].to_numpy(dtype=float) == pytest.approx(np.exp(low), rel=1e-6)
    if se in ("classical", "HC0", "cluster"):  # what statsmodels' Logit computes itself
        logit = sm.Logit(np.array(YES), X())
        kwargs = (
            {"cov_type": "cluster", "cov_kwds": {"groups": GROUPS}}
            if se == "cluster"
            else ({} if se == "classical" else {"cov_type": "HC0"})
        )
        theirs = logit.fit(disp=0, **kwargs)
        assert table["std_error"].to_numpy(dtype=float) == pytest.approx(theirs.bse, rel=1e-5)


@pytest.mark.parametrize("se", ["HC0", "HC1", "HC3", "cluster"])
def test_fractional_logit_of_a_share(se: str) -> None:
    table = fitted("share", "auto", se)
    assert set(table["model"]) == {"fraclogit"}
    beta, std = logit_by_hand(np.array(SHARE), se)
    assert table["estimate"].to_numpy(dtype=float) == pytest.approx(beta, rel=1e-6)
    assert table["std_error"].to_numpy(dtype=float) == pytest.approx(std, rel=1e-6)


def test_tables_for_a_paper() -> None:
    frame = data()
    study = Study(pd.DataFrame(), pd.DataFrame())
    preds = predictors(study, frame, ["goal"])
    d = design(Measure("yes", "yes", "conversation", frame, True), preds)
    fit = fit_model(d, outcome="goal achieved", se="HC1", binary=True)
    md = markdown(fit)
    assert md.startswith("Logit of goal achieved")
    assert "| goal[Yard Time] |" in md and "OR" in md
    assert "N = 24 conversations" in md and "standard errors: HC1" in md
    tex = latex(fit)
    assert "\\begin{tabular}{lrrrrrrrrr}" in tex and "\\toprule" in tex
    assert "goal[Yard Time]" in tex and "\\caption{Logit of goal achieved}" in tex


# --------------------------------------------------------------------------- planted effects


def test_a_planted_factor_effect_is_recovered() -> None:
    """600 conversations, 60 per cell of goal x persona (2 x 5); the outcome's log odds rise by
    1.2 with goal = Yard Time, its score by 2.0 with persona = rude; nothing else matters. Each
    estimate lies within three standard errors of the truth (and zero effects test as zero)."""
    rng = np.random.default_rng(2024)
    personas = ["calm", "rude", "none", "shy", "loud"]
    rows = []
    for g in ["Escape", "Yard Time"]:
        for p in personas:
            for _ in range(60):
                lin = -0.5 + 1.2 * (g == "Yard Time")
                rows.append(
                    {
                        "factor_goal": g,
                        "factor_persona": p,
                        "yes": bool(rng.random() < 1 / (1 + np.exp(-lin))),
                        "score": 5.0 + 2.0 * (p == "rude") + rng.normal(0, 1.5),
                    }
                )
    frame = pd.DataFrame(rows).astype({"factor_goal": "string", "factor_persona": "string"})
    frame["yes"] = frame["yes"].astype("boolean")
    study = Study(pd.DataFrame(), pd.DataFrame())
    preds = predictors(study, frame, ["goal", "persona"])
    logit = fit_model(
        design(Measure("yes", "yes", "conversation", frame, True), preds),
        outcome="yes",
        binary=True,
    ).table.set_index("term")
    goal = logit.loc["goal[Yard Time]"]
    assert abs(goal["estimate"] - 1.2) < 3 * goal["std_error"] and goal["p_value"] < 0.001
    assert goal["odds_ratio"] == pytest.approx(np.exp(goal["estimate"]))
    for p in personas[1:]:  # no persona effect on the odds
        row = logit.loc[f"persona[{p}]"]
        assert abs(row["estimate"]) < 3 * row["std_error"]
    ols = fit_model(
        design(Measure("score", "score", "conversation", frame, False), preds), outcome="score"
    ).table.set_index("term")
    rude = ols.loc["persona[rude]"]
    assert abs(rude["estimate"] - 2.0) < 3 * rude["std_error"] and rude["p_value"] < 0.001
    goal = ols.loc["goal[Yard Time]"]
    assert abs(goal["estimate"]) < 3 * goal["std_error"]


# --------------------------------------------------------------------------- what cannot be fit


def test_a_model_that_cannot_be_estimated_says_why() -> None:
    frame = data()
    frame["always"] = pd.array([g == "Yard Time" for g in GOAL], dtype="boolean")
    study = Study(pd.DataFrame(), pd.DataFrame())
    preds = predictors(study, frame, ["goal"])
    d = design(Measure("always", "always", "conversation", frame, True), preds)
    with pytest.raises(ModelError, match=r"perfectly predicted within goal=Yard Time \(always 1\)"):
        fit_model(d, outcome="always", binary=True)
    frame["copy"] = frame["factor_goal"]
    both = predictors(study, frame, ["goal", "copy"])
    with pytest.raises(ModelError, match=r"copy\[Yard Time\] is a combination of the terms"):
        design(Measure("score", "score", "conversation", frame, False), both)
    with pytest.raises(StudyError, match="no predictor 'mood'"):
        predictors(study, frame, ["mood"])
    with pytest.raises(ModelError, match="logit needs a yes/no outcome"):
        fit_model(
            design(Measure("score", "score", "conversation", frame, False), preds),
            outcome="score",
            model="logit",
        )
    one = frame.assign(factor_goal="Escape")
    d = design(
        Measure("score", "score", "conversation", one, False), predictors(study, one, ["goal"])
    )
    assert d.notes == ["goal: one value (Escape); left out"]


def test_reference_levels_and_categorical_numbers() -> None:
    frame = data()
    study = Study(pd.DataFrame(), pd.DataFrame())
    preds = predictors(
        study, frame, ["persona", "guard"], categorical=["guard"], reference={"persona": "rude"}
    )
    d = design(Measure("score", "score", "conversation", frame, False), preds)
    assert [t.name for t in d.terms] == [
        "(intercept)",
        "persona[calm]",
        "persona[none]",
        "guard[2]",
    ]
    assert {t.reference for t in d.terms[1:]} == {"rude", "1"}
    with pytest.raises(StudyError, match=r"--reference persona=shy: not a level of persona"):
        predictors(study, frame, ["persona"], reference={"persona": "shy"})
