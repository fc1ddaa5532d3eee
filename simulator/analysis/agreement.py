"""Agreement between coders: Cohen's kappa (two coders, optionally weighted) and Krippendorff's
alpha (any number of coders, missing values, four levels of measurement).

Both are pure functions of the coders' values; a missing value is ``None`` (or NA).

- **Cohen's kappa** (Cohen 1960): κ = (p_o − p_e) / (1 − p_e) over the items both coders coded,
  p_e from each coder's own marginal distribution. **Weighted kappa** (Cohen 1968) for ordered
  answers: κ_w = 1 − Σ w·o / Σ w·e with disagreement weights on the categories' *positions* i, j
  in their order (k categories): linear |i − j| / (k − 1), quadratic ((i − j) / (k − 1))²
  (Cicchetti and Allison 1971; Fleiss and Cohen 1973).
- **Krippendorff's alpha** (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"):
  α = 1 − D_o / D_e from the coincidence matrix of the pairable values (units coded by at least
  two coders), with the difference function of the level of measurement: nominal (0 or 1),
  ordinal (the ranks between two values, from the values' frequencies), interval ((c − k)²) and
  ratio (((c − k) / (c + k))²).

Both are undefined (None) when nothing varies: no pairable item, or every value the same.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import pandas as pd

LEVELS = ("nominal", "ordinal", "interval", "ratio")
WEIGHTS = ("linear", "quadratic")


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float) and v != v


def _ordered(values: Sequence[Hashable], order: Sequence[Hashable] | None) -> list[Hashable]:
    """The distinct values in ``order`` (those it lists, then the others), else sorted when
    they sort (numbers, texts), else in order of first appearance."""
    distinct = list(dict.fromkeys(values))
    if order is not None:
        listed = [v for v in order if v in set(distinct)]
        return listed + [v for v in distinct if v not in set(listed)]
    try:
        return sorted(distinct)  # type: ignore[type-var]
    except TypeError:
        return distinct


def percent_agreement(units: Sequence[Sequence[Any]]) -> float | None:
    """The share of pairable units (two values or more) on which every coder agrees."""
    pairable = [[v for v in u if not _missing(v)] for u in units]
    pairable = [u for u in pairable if len(u) >= 2]
    if not pairable:
        return None
    return sum(1 for u in pairable if len(set(u)) == 1) / len(pairable)


def cohen_kappa(
    a: Sequence[Any],
    b: Sequence[Any],
    *,
    weights: str | None = None,
    order: Sequence[Hashable] | None = None,
) -> float | None:
    """Cohen's kappa of two coders' values (item by item; items either coder left missing are
    left out); ``weights`` ``linear`` or ``quadratic`` gives the weighted kappa over the
    categories in ``order`` (default: sorted). None when undefined."""
    if len(a) != len(b):
        raise ValueError("the two coders must code the same items")
    if weights is not None and weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}")
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not _missing(x) and not _missing(y)]
    if not pairs:
        return None
    categories = _ordered([v for p in pairs for v in p], order)
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    n = len(pairs)
    observed = [[0.0] * k for _ in range(k)]
    for x, y in pairs:
        observed[index[x]][index[y]] += 1 / n
    row = [sum(observed[i]) for i in range(k)]
    col = [sum(observed[i][j] for i in range(k)) for j in range(k)]

    def weight(i: int, j: int) -> float:
        if weights is None:
            return 0.0 if i == j else 1.0
        d = abs(i - j) / (k - 1) if k > 1 else 0.0
        return d if weights == "linear" else d * d

    disagree_o = sum(weight(i, j) * observed[i][j] for i in range(k) for j in range(k))
    disagree_e = sum(weight(i, j) * row[i] * col[j] for i in range(k) for j in range(k))
    if disagree_e == 0:
        return None  # both coders used one and the same category: chance agreement is perfect
    return 1 - disagree_o / disagree_e


def _difference(
    level: str, counts: dict[Hashable, float], order: list[Hashable]
) -> Callable[[Hashable, Hashable], float]:
    if level == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if level == "interval":
        return lambda c, k: (float(c) - float(k)) ** 2  # type: ignore[arg-type]
    if level == "ratio":

        def ratio(c: Hashable, k: Hashable) -> float:
            x, y = float(c), float(k)  # type: ignore[arg-type]
            return 0.0 if x + y == 0 else ((x - y) / (x + y)) ** 2

        return ratio
    if level == "ordinal":
        rank = {v: i for i, v in enumerate(order)}

        def ordinal(c: Hashable, k: Hashable) -> float:
            lo, hi = sorted((rank[c], rank[k]))
            between = sum(counts[order[g]] for g in range(lo, hi + 1))
            return (between - (counts[c] + counts[k]) / 2) ** 2

        return ordinal
    raise ValueError(f"level of measurement must be one of {', '.join(LEVELS)}, not {level!r}")


def krippendorff_alpha(
    units: Sequence[Sequence[Any]],
    level: str = "nominal",
    *,
    order: Sequence[Hashable] | None = None,
) -> float | None:
    """Krippendorff's alpha of ``units`` (one sequence of the coders' values per item, missing
    values allowed) at the ``level`` of measurement; ``order`` orders ordinal values (default:
    sorted). None when undefined (no pairable unit, or no variation)."""
    if level not in LEVELS:
        raise ValueError(f"level of measurement must be one of {', '.join(LEVELS)}, not {level!r}")
    pairable = [[v for v in u if not _missing(v)] for u in units]
    pairable = [u for u in pairable if len(u) >= 2]
    if not pairable:
        return None
    coincidences: dict[tuple[Hashable, Hashable], float] = {}
    for values in pairable:
        m = len(values)
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidences[(c, k)] = coincidences.get((c, k), 0.0) + 1 / (m - 1)
    counts: dict[Hashable, float] = {}
    for (c, _), o in coincidences.items():
        counts[c] = counts.get(c, 0.0) + o
    n = sum(counts.values())
    values = _ordered(list(counts), order)
    delta = _difference(level, counts, values)
    observed = sum(o * delta(c, k) for (c, k), o in coincidences.items())
    expected = sum(counts[c] * counts[k] * delta(c, k) for c in values for k in values)
    if expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


__all__ = ["LEVELS", "WEIGHTS", "cohen_kappa", "krippendorff_alpha", "percent_agreement"]
