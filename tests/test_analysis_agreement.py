"""Cohen's kappa and Krippendorff's alpha match published worked examples, computed by hand."""

from __future__ import annotations

import pytest

from simulator.analysis.agreement import cohen_kappa, krippendorff_alpha, percent_agreement

N = None
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: four observers,
# twelve units, values 1-5, missing values (unit 12 has one value: not pairable).
RELIABILITY_DATA = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    "C": [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
}
UNITS = list(zip(*RELIABILITY_DATA.values(), strict=True))


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_alpha_matches_krippendorffs_worked_example(level: str, published: float) -> None:
    assert krippendorff_alpha(UNITS, level) == pytest.approx(published, abs=5e-4)


def test_alpha_of_the_nominal_example_by_hand() -> None:
    """The coincidence matrix of section C: n = 40 pairable values (n_1..n_5 = 9, 13, 10, 5, 3);
    the off-diagonal coincidences come from three units: unit 2 (2, 2, 3, 2: three 2-3 pairs of
    weight 1/3, both ways: 2), unit 6 (1, 2, 3, 4: twelve ordered pairs of weight 1/3: 4) and
    unit 8 (1, 1, 2, 1: 2). alpha = 1 - (n - 1) * 8 / (n^2 - sum n_c^2) = 1 - 312 / 1216."""
    n_c = {1: 9, 2: 13, 3: 10, 4: 5, 5: 3}
    n = sum(n_c.values())
    off_diagonal = 2 + 4 + 2
    expected = 1 - (n - 1) * off_diagonal / (n * n - sum(v * v for v in n_c.values()))
    assert expected == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(UNITS, "nominal") == pytest.approx(expected)


def test_alpha_of_two_observers_binary_data() -> None:
    # Krippendorff (2011), section A: two observers, ten units, binary values: alpha = 0.095
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert krippendorff_alpha(list(zip(a, b, strict=True))) == pytest.approx(0.095, abs=5e-4)


def test_cohens_kappa_of_the_textbook_table() -> None:
    """50 items: both yes 20, A yes and B no 5, A no and B yes 10, both no 15 (Wikipedia's
    "Cohen's kappa", example 1): p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4."""
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert percent_agreement(list(zip(a, b, strict=True))) == pytest.approx(0.7)


def test_weighted_kappa_by_hand() -> None:
    """Three ordered categories, 10 items. Observed table (rows: A, columns: B):
    [[2, 1, 0], [1, 2, 1], [0, 1, 2]]; marginals 3/4/3 for both coders.
    Linear weights |i - j| / 2: observed disagreement = (1 + 1 + 1 + 1) * 0.5 / 10 = 0.2;
    expected = sum w_ij r_i c_j = 0.5 * 2 * (0.3*0.4 + 0.4*0.3) + 1 * 2 * 0.3*0.3 = 0.42;
    kappa_w = 1 - 0.2 / 0.42. Quadratic weights ((i - j) / 2)^2: observed 4 * 0.25 / 10 = 0.1,
    expected 0.25 * 0.48 + 1 * 0.18 = 0.30, kappa_w = 1 - 0.1 / 0.3."""
    pairs = [(1, 1)] * 2 + [(1, 2)] + [(2, 1)] + [(2, 2)] * 2 + [(2, 3)] + [(3, 2)] + [(3, 3)] * 2
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    assert cohen_kappa(a, b, weights="linear") == pytest.approx(1 - 0.2 / 0.42)
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(1 - 0.1 / 0.3)
    # unweighted: p_o = 0.6, p_e = 0.09 + 0.16 + 0.09 = 0.34
    assert cohen_kappa(a, b) == pytest.approx((0.6 - 0.34) / (1 - 0.34))


def test_missing_values_and_undefined_agreement() -> None:
    assert cohen_kappa(["yes", None, "no"], ["yes", "no", None]) is None  # one category left
    assert cohen_kappa([None], [None]) is None
    assert krippendorff_alpha([("a", None), (None, "b")]) is None  # nothing pairable
    assert krippendorff_alpha([("a", "a"), ("a", "a")]) is None  # no variation
    with pytest.raises(ValueError, match="level of measurement"):
        krippendorff_alpha(UNITS, "cardinal")
