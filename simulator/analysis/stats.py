"""Regression of an outcome on study factors, models, agent counts and days, with robust or
clustered standard errors, as a tidy table (CSV) and Markdown and LaTeX tables.

Models (statsmodels fits them):

- ``ols``: ordinary least squares (a score, a count, a share);
- ``logit``: a binary outcome (a yes/no answer, ``NAME=LEVEL``, ``NAME>X``), by maximum
  likelihood; estimates are log odds, with odds ratios ``exp(estimate)`` and their intervals;
- ``fraclogit``: a share in [0, 1] (the share of toxic messages, a turn share): Papke and
  Wooldridge's (1996) fractional logit, the binomial quasi-likelihood with the logit link, whose
  standard errors must be robust; odds ratios as for logit.

``auto`` picks logit for a yes/no outcome, fraclogit for a numeric outcome within [0, 1] that is
not only 0 and 1, else OLS.

Standard errors (one sandwich V = B M B for every model; B the inverse of X'X for OLS, of X'WX
with W = μ(1 − μ) for the logit models; e the residual y − ŷ; h the leverage, the diagonal of
X(X'X)⁻¹X' for OLS and of W½X(X'WX)⁻¹X'W½ for the logit models; n rows, k coefficients):

- ``classical``: σ²(X'X)⁻¹ with σ² = e'e / (n − k) for OLS; B for the logit models;
- ``HC0``: M = Σ e²xx' (White 1980); ``HC1``: HC0 · n / (n − k); ``HC2``: e² / (1 − h);
  ``HC3``: e² / (1 − h)² (MacKinnon and White 1985; as R's ``sandwich::vcovHC``, also for GLMs);
- ``cluster``: M = Σ_g (Σ_{i∈g} e x)(Σ_{i∈g} e x)' · G / (G − 1) · (n − 1) / (n − k), clusters
  g = 1..G of ``--cluster`` (default the conversation: messages of one conversation are not
  independent), as Stata and statsmodels.

Tests of OLS coefficients use Student's t with n − k degrees of freedom (G − 1 when clustered);
of the logit models, the normal distribution. 95 % intervals likewise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.analysis.loading import FLOAT, INT, STRING, typed
from simulator.analysis.reporting import latex_table, markdown_table, write_text
from simulator.analysis.study import Measure, Predictor, StudyError

MODELS = ("auto", "ols", "logit", "fraclogit")
COVARIANCES = ("classical", "HC0", "HC1", "HC2", "HC3", "cluster")
LEVEL = 0.95

FIT_COLUMNS: dict[str, str] = {
    "outcome": STRING,
    "model": STRING,
    "se": STRING,
    "term": STRING,
    "variable": STRING,
    "level": STRING,
    "reference": STRING,
    "estimate": FLOAT,
    "std_error": FLOAT,
    "statistic": FLOAT,
    "p_value": FLOAT,
    "conf_low": FLOAT,
    "conf_high": FLOAT,
    "odds_ratio": FLOAT,
    "or_conf_low": FLOAT,
    "or_conf_high": FLOAT,
    "n": INT,
    "clusters": INT,
}


class ModelError(StudyError):
    """A model that cannot be estimated on this data (says why and what to do)."""

    title = "Cannot fit the model"


@dataclass(frozen=True)
class Term:
    name: str  # goal[Yard Time], count_guard, (intercept)
    variable: str
    level: str | None = None
    reference: str | None = None


@dataclass
class Design:
    """The model's data: y, X with named terms, the cluster of each row, what was left out."""

    y: np.ndarray
    X: np.ndarray
    terms: list[Term]
    groups: np.ndarray | None
    unit: str
    left_out: int
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def k(self) -> int:
        return int(self.X.shape[1])


def design(
    outcome: Measure,
    predictors: Sequence[Predictor],
    *,
    cluster: str | None = None,
) -> Design:
    """y and X (an intercept, a dummy per non-reference level of each categorical predictor, each
    numeric predictor as is), rows with a missing outcome or predictor left out; a predictor with
    one value in the data is left out with a note."""
    frame = outcome.frame
    used = [outcome.column, *(p.column for p in predictors)]
    if cluster is not None:
        used.append(cluster)
    keep = frame[list(dict.fromkeys(used))].notna().all(axis=1)
    data = frame[keep].reset_index(drop=True)
    left_out = int((~keep).sum())
    if data.empty:
        raise ModelError(
            f"no {outcome.unit} has both an outcome ({outcome.column}) and every predictor"
        )
    columns: list[np.ndarray] = [np.ones(len(data))]
    terms = [Term("(intercept)", "(intercept)")]
    notes: list[str] = []
    for p in predictors:
        series = data[p.column]
        if p.categorical:
            values = series.astype(str)
            levels = [lv for lv in p.levels if lv in set(values)]
            if len(levels) < 2:
                notes.append(f"{p.name}: one value ({levels[0] if levels else '?'}); left out")
                continue
            for level in levels[1:]:
                columns.append((values == level).to_numpy(dtype=float))
                terms.append(Term(f"{p.name}[{level}]", p.name, level, levels[0]))
        else:
            x = series.astype(float).to_numpy()
            if np.ptp(x) == 0:
                notes.append(f"{p.name}: one value ({x[0]:g}); left out")
                continue
            columns.append(x)
            terms.append(Term(p.name, p.name))
    X = np.column_stack(columns)
    y_raw = data[outcome.column]
    y = y_raw.astype(float).to_numpy()
    groups = None
    if cluster is not None:
        groups = pd.factorize(data[cluster].astype(str))[0]
    if X.shape[0] <= X.shape[1]:
        raise ModelError(
            f"{X.shape[0]} {outcome.unit}(s) for {X.shape[1]} coefficients: a model needs more "
            "rows than coefficients (select more conversations or fewer predictors)"
        )
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        for j in range(1, X.shape[1]):
            if np.linalg.matrix_rank(X[:, : j + 1]) <= j:
                raise ModelError(
                    f"{terms[j].name} is a combination of the terms before it (the design "
                    "confounds them: every level of one predictor goes with one level of "
                    "another); leave one of them out"
                )
    return Design(y, X, terms, groups, outcome.unit, left_out, notes)


# --------------------------------------------------------------------------- the models


@dataclass
class Fit:
    """A fitted model: the tidy coefficient table and the model's summary numbers."""

    outcome: str
    model: str
    se: str
    unit: str
    table: pd.DataFrame
    n: int
    k: int
    clusters: int | None
    left_out: int
    r2: float | None = None
    pseudo_r2: float | None = None
    loglik: float | None = None
    notes: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        parts = [f"N = {self.n} {self.unit}s"]
        if self.left_out:
            parts[0] += f" ({self.left_out} left out: outcome or predictor missing)"
        if self.clusters is not None:
            parts.append(f"{self.clusters} clusters")
        if self.r2 is not None:
            parts.append(f"R² = {self.r2:.3f}")
        if self.pseudo_r2 is not None:
            parts.append(f"McFadden's pseudo R² = {self.pseudo_r2:.3f}")
        if self.loglik is not None:
            parts.append(f"log-likelihood = {self.loglik:.3f}")
        parts.append(f"standard errors: {self.se}")
        return "; ".join(parts)


def choose_model(y: np.ndarray, binary: bool) -> str:
    if binary or set(np.unique(y)) <= {0.0, 1.0}:
        return "logit"
    if np.all((y >= 0) & (y <= 1)):
        return "fraclogit"
    return "ols"


def sandwich(
    X: np.ndarray,
    resid: np.ndarray,
    bread: np.ndarray,
    leverage: np.ndarray,
    kind: str,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """The robust covariance B M B of the module docstring (``kind``: HC0..HC3 or cluster)."""
    n, k = X.shape
    if kind == "cluster":
        if groups is None:
            raise ValueError("clustered standard errors need groups")
        labels = np.unique(groups)
        G = len(labels)
        scores = X * resid[:, None]
        sums = np.vstack([scores[groups == g].sum(axis=0) for g in labels])
        meat = sums.T @ sums * (G / (G - 1)) * ((n - 1) / (n - k))
        return bread @ meat @ bread
    e2 = resid**2
    if kind == "HC1":
        e2 = e2 * n / (n - k)
    elif kind == "HC2":
        e2 = e2 / (1 - leverage)
    elif kind == "HC3":
        e2 = e2 / (1 - leverage) ** 2
    elif kind != "HC0":
        raise ValueError(f"unknown covariance {kind!r}")
    meat = (X * e2[:, None]).T @ X
    return bread @ meat @ bread


def _separation(design: Design) -> str:
    """The levels of categorical predictors within which the outcome never varies."""
    hints = []
    for t in design.terms:
        if t.level is None:
            continue
        column = design.X[:, design.terms.index(t)] == 1
        ys = design.y[column]
        if len(ys) and (np.all(ys == ys[0])) and ys[0] in (0.0, 1.0):
            hints.append(f"{t.variable}={t.level} (always {int(ys[0])})")
    return "; ".join(hints)


def fit_model(
    design: Design,
    *,
    outcome: str,
    model: str = "auto",
    se: str = "HC1",
    binary: bool = False,
    cluster: str = "conversation",
    level: float = LEVEL,
) -> Fit:
    """Fit ``model`` on ``design`` with standard errors ``se`` (see the module docstring)."""
    import statsmodels.api as sm
    from scipy import stats as st

    if model not in MODELS:
        raise ModelError(f"--model: one of {', '.join(MODELS)}")
    if se not in COVARIANCES:
        raise ModelError(f"--se: one of {', '.join(COVARIANCES)}")
    if se == "cluster" and design.groups is None:
        raise ModelError("--se cluster needs --cluster (default: the conversation)")
    y, X = design.y, design.X
    n, k = X.shape
    chosen = choose_model(y, binary) if model == "auto" else model
    if chosen == "logit" and not set(np.unique(y)) <= {0.0, 1.0}:
        raise ModelError(
            f"logit needs a yes/no outcome; {outcome} has other values (use fraclogit for a "
            "share in 0..1, ols for a score, or NAME=LEVEL / NAME>X for a yes/no outcome)"
        )
    if chosen == "fraclogit" and not np.all((y >= 0) & (y <= 1)):
        raise ModelError(f"fraclogit needs a share in 0..1; {outcome} has values outside it")
    r2 = pseudo_r2 = loglik = None
    if chosen == "ols":
        result = sm.OLS(y, X).fit()
        beta = np.asarray(result.params)
        resid = y - X @ beta
        bread = np.linalg.inv(X.T @ X)
        leverage = np.einsum("ij,jk,ik->i", X, bread, X)
        r2 = float(result.rsquared)
        if se == "classical":
            cov = bread * float(resid @ resid) / (n - k)
        else:
            cov = sandwich(X, resid, bread, leverage, se, design.groups)
    else:
        from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = sm.GLM(y, X, family=sm.families.Binomial()).fit()
            except Exception as exc:  # statsmodels raises PerfectSeparationError in old versions
                raise ModelError(_separation_message(outcome, design, str(exc))) from None
        kinds = {type(w.message) for w in caught}
        if PerfectSeparationWarning in kinds:
            raise ModelError(_separation_message(outcome, design, ""))
        if ConvergenceWarning in kinds:
            raise ModelError(_separation_message(outcome, design, "it did not converge"))
        beta = np.asarray(result.params)
        mu = 1 / (1 + np.exp(-(X @ beta)))
        weights = mu * (1 - mu)
        bread = np.linalg.inv(X.T @ (X * weights[:, None]))
        leverage = weights * np.einsum("ij,jk,ik->i", X, bread, X)
        resid = y - mu
        loglik = float(np.sum(y * np.log(mu) + (1 - y) * np.log(1 - mu)))
        ybar = float(np.mean(y))
        null = (
            float(n * (ybar * math.log(ybar) + (1 - ybar) * math.log(1 - ybar)))
            if 0 < ybar < 1
            else None
        )
        pseudo_r2 = 1 - loglik / null if null else None
        cov = bread if se == "classical" else sandwich(X, resid, bread, leverage, se, design.groups)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))  # rounding may leave -1e-17
    notes = list(design.notes)
    if np.all(np.abs(resid) <= 1e-9 * max(1.0, float(np.max(np.abs(y))))):
        notes.append(
            "the predictors fit the outcome exactly (no residual variation): standard errors "
            "are 0 and tests are undefined"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = np.where(std > 0, beta / np.where(std > 0, std, 1.0), np.nan)
    clusters = (
        len(np.unique(design.groups)) if se == "cluster" and design.groups is not None else None
    )
    if chosen == "ols":
        df = (clusters - 1) if clusters is not None else (n - k)
        p = 2 * st.t.sf(np.abs(statistic), df)
        q = st.t.ppf(0.5 + level / 2, df)
    else:
        p = 2 * st.norm.sf(np.abs(statistic))
        q = st.norm.ppf(0.5 + level / 2)
    low, high = beta - q * std, beta + q * std
    rows = []
    for j, t in enumerate(design.terms):
        row: dict[str, Any] = {
            "outcome": outcome,
            "model": chosen,
            "se": se,
            "term": t.name,
            "variable": t.variable,
            "level": t.level,
            "reference": t.reference,
            "estimate": beta[j],
            "std_error": std[j],
            "statistic": statistic[j],
            "p_value": p[j],
            "conf_low": low[j],
            "conf_high": high[j],
            "n": n,
            "clusters": clusters,
        }
        if chosen != "ols":
            row.update(
                odds_ratio=math.exp(beta[j]),
                or_conf_low=math.exp(low[j]),
                or_conf_high=math.exp(high[j]),
            )
        rows.append(row)
    return Fit(
        outcome=outcome,
        model=chosen,
        se=se if se != "cluster" else f"clustered by {cluster}",
        unit=design.unit,
        table=typed(pd.DataFrame(rows), FIT_COLUMNS),
        n=n,
        k=k,
        clusters=clusters,
        left_out=design.left_out,
        r2=r2,
        pseudo_r2=pseudo_r2,
        loglik=loglik,
        notes=notes,
    )


def _separation_message(outcome: str, design: Design, detail: str) -> str:
    hint = _separation(design)
    where = f" within {hint}" if hint else ""
    return (
        f"{outcome} is perfectly predicted{where}: a logit has no finite estimate there. Leave "
        "that predictor out, select more conversations, or fit a linear probability model "
        "(--model ols)" + (f" ({detail})" if detail else "")
    )


# --------------------------------------------------------------------------- tables


def display_table(fit: Fit) -> pd.DataFrame:
    """The coefficient table as printed: term, estimate, SE, z or t, p, interval, odds ratio."""
    cols = ["term", "estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
    if fit.model != "ols":
        cols += ["odds_ratio", "or_conf_low", "or_conf_high"]
    return fit.table[cols]


def headers(fit: Fit) -> dict[str, str]:
    stat = "t" if fit.model == "ols" else "z"
    return {
        "term": "term",
        "estimate": "estimate",
        "std_error": "SE",
        "statistic": stat,
        "p_value": "p",
        "conf_low": "95% CI low",
        "conf_high": "95% CI high",
        "odds_ratio": "OR",
        "or_conf_low": "OR 95% low",
        "or_conf_high": "OR 95% high",
    }


MODEL_NAMES = {"ols": "OLS", "logit": "Logit", "fraclogit": "Fractional logit"}


def markdown(fit: Fit) -> str:
    title = f"{MODEL_NAMES[fit.model]} of {fit.outcome}"
    lines = [
        title,
        "",
        markdown_table(display_table(fit), headers=headers(fit)),
        "",
        fit.summary_line(),
    ]
    lines += fit.notes
    return "\n".join(lines)


def latex(fit: Fit) -> str:
    notes = [fit.summary_line(), *fit.notes]
    return latex_table(
        display_table(fit),
        headers=headers(fit),
        caption=f"{MODEL_NAMES[fit.model]} of {fit.outcome}",
        notes=notes,
    )


def write_fit(fit: Fit, output: Path) -> list[Path]:
    """``<output>.csv`` (tidy, every digit), ``.md`` and ``.tex`` (``output`` without suffix)."""
    base = output.with_suffix("") if output.suffix in (".csv", ".md", ".tex") else output
    base.parent.mkdir(parents=True, exist_ok=True)
    csv = base.with_name(base.name + ".csv")
    fit.table.to_csv(csv, index=False)
    md = write_text(base.with_name(base.name + ".md"), markdown(fit))
    tex = write_text(base.with_name(base.name + ".tex"), latex(fit))
    return [csv, md, tex]


__all__ = [
    "COVARIANCES",
    "FIT_COLUMNS",
    "MODELS",
    "Design",
    "Fit",
    "ModelError",
    "Term",
    "choose_model",
    "design",
    "fit_model",
    "latex",
    "markdown",
    "sandwich",
    "write_fit",
]
