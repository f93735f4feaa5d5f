"""XDream's genetic operators against hand-worked numbers, and the optimiser built from them."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bci.evolve import (
    GeneticOptimizer,
    crossover,
    mutate,
    roulette,
    select_parents,
    selection_probabilities,
    temperature,
)


class FixedUniforms:
    """A stand-in rng whose ``random`` returns given uniforms (for hand-worked examples)."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64)

    def random(self, size):
        return self.values.reshape(size)


# -- selection probabilities ---------------------------------------------------------------------


def test_selection_probabilities_hand_worked():
    # scores 1, 2, 3, 4, 10: mean 4, squared deviations 9 + 4 + 1 + 0 + 36 = 50, so
    # std = sqrt(50 / 5) = sqrt(10) and kT = sqrt(10) / selectivity(2) (unclipped scores).
    # 95th percentile, linear: position 0.95 * 4 = 3.8 -> 4 + 0.8 * (10 - 4) = 8.8, so the
    # clipped scores are 1, 2, 3, 4, 8.8 and w_i = exp((c_i - 8.8) / kT).
    scores = [1.0, 2.0, 3.0, 4.0, 10.0]
    kT = np.sqrt(10.0) / 2.0
    c = np.array([1.0, 2.0, 3.0, 4.0, 8.8])
    w = np.exp((c - 8.8) / kT)
    assert temperature(scores, 2.0) == pytest.approx(kT, rel=1e-12)
    p = selection_probabilities(scores, 2.0)
    np.testing.assert_allclose(p, w / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(
        p, [0.00658285, 0.01239042, 0.02332158, 0.0438965, 0.91380865], atol=5e-9
    )
    # without the clipping the best member would get exp(1.2 / kT) times more weight
    unclipped = np.exp((np.array(scores) - 10.0) / kT)
    assert abs(p[-1] - unclipped[-1] / unclipped.sum()) > 0.02
    # kT from the clipped scores (not XDream's order) would give a different answer
    kT_clipped = np.std(c) / 2.0
    w_alt = np.exp((c - 8.8) / kT_clipped)
    assert np.max(np.abs(p - w_alt / w_alt.sum())) > 0.005


def test_selection_probabilities_follow_the_input_order():
    p = selection_probabilities([3.0, 1.0, 10.0, 4.0, 2.0], 2.0)
    ref = selection_probabilities([1.0, 2.0, 3.0, 4.0, 10.0], 2.0)
    np.testing.assert_allclose(p, ref[[2, 0, 4, 3, 1]], rtol=1e-12)


def test_kT_multiplier_replaces_one_over_selectivity():
    scores = [1.0, 2.0, 3.0, 4.0, 10.0]
    kT = 2.0 * np.sqrt(10.0)  # Ponce: kT = 2 * std
    c = np.array([1.0, 2.0, 3.0, 4.0, 8.8])
    w = np.exp((c - 8.8) / kT)
    assert temperature(scores, kT_multiplier=2.0) == pytest.approx(kT, rel=1e-12)
    np.testing.assert_allclose(
        selection_probabilities(scores, kT_multiplier=2.0), w / w.sum(), rtol=1e-12
    )
    with pytest.raises(ValueError, match="not both"):
        selection_probabilities(scores, 2.0, kT_multiplier=2.0)


def test_kT_floor():
    # std of (0, 0, 0, 0, 1e-9) is 4e-10, so std / 2 = 2e-10 < 1e-8: kT is floored at 1e-8.
    # P95 = 0.8 * 1e-9 = 8e-10, so the four zeros get exp(-8e-10 / 1e-8) = exp(-0.08).
    scores = [0.0, 0.0, 0.0, 0.0, 1e-9]
    assert temperature(scores, 2.0) == 1e-8
    w = np.array([np.exp(-0.08)] * 4 + [1.0])
    np.testing.assert_allclose(selection_probabilities(scores, 2.0), w / w.sum(), rtol=1e-9)
    # equal scores: std 0, floored kT, uniform probabilities (no division by zero)
    np.testing.assert_allclose(selection_probabilities([5.0, 5.0, 5.0], 2.0), [1 / 3] * 3)


def test_underflowed_weights_are_raised_to_the_smallest_positive_one():
    # selectivity 1000: kT = 0.5 / 1000; the clipped gap 0.95 gives exp(-1900) == 0.0, which
    # XDream replaces by the smallest positive weight (here the best's 1.0).
    np.testing.assert_allclose(selection_probabilities([0.0, 1.0], 1000.0), [0.5, 0.5])


def test_selection_probabilities_reject_bad_scores():
    with pytest.raises(ValueError, match="finite"):
        selection_probabilities([1.0, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        selection_probabilities([[1.0, 2.0]])
    with pytest.raises(ValueError, match="selectivity"):
        selection_probabilities([1.0, 2.0], 0.0)


# -- roulette, crossover, mutation ---------------------------------------------------------------


def test_roulette_hand_worked():
    # cumulative bins 0.5, 0.75, 1.0, 1.0: u < 0.5 -> 0, 0.5 <= u < 0.75 -> 1, else 2; the
    # zero-probability member 3 can never be drawn.
    u = [0.0, 0.49, 0.5, 0.74, 0.75, 0.999]
    idx = roulette([0.5, 0.25, 0.25, 0.0], 6, FixedUniforms(u))
    np.testing.assert_array_equal(idx, [0, 0, 1, 1, 2, 2])


def test_roulette_frequencies():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    n = 40_000
    idx = roulette(p, n, np.random.default_rng(0))
    freq = np.bincount(idx, minlength=4) / n
    # binomial standard error sqrt(p (1 - p) / n) <= 0.0025; allow 5 of them
    np.testing.assert_allclose(freq, p, atol=5 * 0.0025)
    assert freq[3] == 0.0


def test_select_parents_orders_pairs_when_asked():
    p = selection_probabilities(np.arange(10.0), 2.0)
    a1, a2 = select_parents(p, 500, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    r1, r2 = roulette(p, 500, rng), roulette(p, 500, rng)
    np.testing.assert_array_equal(a1, r1)
    np.testing.assert_array_equal(a2, r2)
    b1, b2 = select_parents(p, 500, np.random.default_rng(3), fitter_first=True)
    np.testing.assert_array_equal(b1, np.minimum(r1, r2))
    np.testing.assert_array_equal(b2, np.maximum(r1, r2))
    assert np.any(r1 > r2)  # the ordering did something


def test_crossover_hand_worked():
    a = np.array([[1.0, 2.0, 3.0, 4.0]])
    b = np.array([[-1.0, -2.0, -3.0, -4.0]])
    # gene from parent 1 where u < heritability (0.5): u = 0.1, 0.8, 0.5, 0.49
    child = crossover(a, b, 0.5, FixedUniforms([[0.1, 0.8, 0.5, 0.49]]))
    np.testing.assert_array_equal(child, [[1.0, -2.0, -3.0, 4.0]])


def test_crossover_mask_frequency():
    a, b = np.zeros((2000, 32)), np.ones((2000, 32))
    child = crossover(a, b, 0.75, np.random.default_rng(1))
    frac_from_a = np.mean(child == 0.0)
    # 64000 Bernoulli(0.75) genes: standard error sqrt(0.75 * 0.25 / 64000) = 0.0017
    assert abs(frac_from_a - 0.75) < 5 * 0.0017
    assert np.all((child == 0.0) | (child == 1.0))
    np.testing.assert_array_equal(crossover(a, b, 1.0, np.random.default_rng(1)), a)
    np.testing.assert_array_equal(crossover(a, b, 0.0, np.random.default_rng(1)), b)
    with pytest.raises(ValueError, match=r"\(2000, 32\) and \(3, 32\)"):
        crossover(a, b[:3], 0.5, np.random.default_rng(1))


def test_mutation_rate_and_size():
    x = np.full((4000, 32), 2.0)
    y = mutate(x, 0.25, 0.75, np.random.default_rng(2))
    assert np.all(x == 2.0)  # the input is not modified
    changed = y != x
    # 128000 Bernoulli(0.25) genes: standard error sqrt(0.25 * 0.75 / 128000) = 0.0012
    assert abs(changed.mean() - 0.25) < 5 * 0.0012
    delta = (y - x)[changed]
    # ~32000 N(0, 0.75^2) draws: the s.e. of the std is 0.75 / sqrt(2 * 32000) = 0.003
    assert abs(delta.std() - 0.75) < 5 * 0.003
    assert abs(delta.mean()) < 5 * 0.75 / np.sqrt(delta.size)
    np.testing.assert_array_equal(mutate(x, 0.0, 0.75, np.random.default_rng(2)), x)
    with pytest.raises(ValueError, match="rate"):
        mutate(x, 1.5, 0.75, np.random.default_rng(2))


# -- the optimiser --------------------------------------------------------------------------------


def test_defaults_and_ponce_preset():
    ga = GeneticOptimizer(8, random_state=0)
    assert ga.params == {
        "population_size": 20,
        "mutation_rate": 0.5,
        "mutation_size": 0.5,
        "selectivity": 2.0,
        "kT_multiplier": None,
        "heritability": 0.5,
        "n_conserve": 1,
        "fitter_parent_first": False,
    }
    ponce = GeneticOptimizer.preset("ponce", 8, random_state=0)
    assert ponce.params == {
        "population_size": 40,
        "mutation_rate": 0.25,
        "mutation_size": 0.75,
        "selectivity": None,
        "kT_multiplier": 2.0,
        "heritability": 0.75,
        "n_conserve": 10,
        "fitter_parent_first": True,
    }
    assert GeneticOptimizer.preset("ponce", 8, n_conserve=3).params["n_conserve"] == 3
    assert GeneticOptimizer.preset("ponce", 8, selectivity=4.0).params["kT_multiplier"] is None
    with pytest.raises(ValueError, match="unknown genetic preset 'nope'; known: xdream, ponce"):
        GeneticOptimizer.preset("nope", 8)


def test_initial_population_is_standard_normal_or_given():
    ga = GeneticOptimizer(16, population_size=500, random_state=0)
    z = ga.ask()
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
    init = np.arange(20 * 4, dtype=np.float32).reshape(20, 4)
    np.testing.assert_array_equal(GeneticOptimizer(4, initial=init).ask(), init)
    with pytest.raises(ValueError, match=r"\(19, 4\), expected \(20, 4\)"):
        GeneticOptimizer(4, initial=init[:19])


def _one_generation_by_hand(ga_kwargs, fitness, seed=5):
    """Breed one generation with the public operators, drawing in the optimiser's order."""
    ga = GeneticOptimizer(6, random_state=seed, **ga_kwargs)
    z = ga.ask()
    state = ga.state_dict()
    ga.tell(z, fitness)
    got = ga.ask()

    from bci.evolve.base import rng_from_state

    rng = rng_from_state(state["rng"])
    params = ga.params
    order = np.argsort(-fitness, kind="stable")
    ranked, scores = z[order], fitness[order]
    k = params["n_conserve"]
    n_children = len(z) - k
    mult, sel = params["kT_multiplier"], params["selectivity"]
    p = selection_probabilities(scores, None if mult else sel, kT_multiplier=mult)
    i1, i2 = select_parents(p, n_children, rng, params["fitter_parent_first"])
    children = crossover(ranked[i1], ranked[i2], params["heritability"], rng)
    children = mutate(children, params["mutation_rate"], params["mutation_size"], rng)
    expected = np.concatenate([ranked[:k], children]).astype(np.float32)
    return got, expected, ranked


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"population_size": 12, "n_conserve": 3, "kT_multiplier": 2.0, "heritability": 0.75},
        {"population_size": 12, "n_conserve": 0, "fitter_parent_first": True},
    ],
)
def test_one_generation_is_the_composition_of_the_operators(kwargs):
    n = kwargs.get("population_size", 20)
    fitness = np.random.default_rng(9).normal(size=n)
    got, expected, _ = _one_generation_by_hand(kwargs, fitness)
    np.testing.assert_array_equal(got, expected)


def test_conserved_members_are_kept_unchanged_best_first():
    ga = GeneticOptimizer(6, population_size=10, n_conserve=3, random_state=0)
    z = ga.ask()
    fitness = np.array([0.1, 5.0, 0.3, 4.0, 0.2, 0.0, 3.0, 0.4, 0.5, 0.6])
    ga.tell(z, fitness)
    nxt = ga.ask()
    np.testing.assert_array_equal(nxt[:3], z[[1, 3, 6]])
    # the children are mutated recombinations, none an exact copy of a member
    for child in nxt[3:]:
        assert not np.any(np.all(child == z, axis=1))


def test_fitter_parent_first_with_full_skew_copies_the_fitter_parent():
    # heritability 1 and no mutation: each child is a copy of parent 1, the fitter of two
    # roulette draws, so it is never the worst member unless both draws were the worst.
    ga = GeneticOptimizer(
        4,
        population_size=30,
        n_conserve=0,
        heritability=1.0,
        mutation_rate=0.0,
        fitter_parent_first=True,
        kT_multiplier=100.0,  # nearly uniform selection
        random_state=1,
    )
    z = ga.ask()
    fitness = np.arange(30.0)
    ga.tell(z, fitness)
    nxt = ga.ask()
    ranks = [29 - int(np.flatnonzero(np.all(z == c, axis=1))[0]) for c in nxt]  # 0 = best
    # P(rank of the fitter of two uniform draws >= 15) = (1/2)^2: expect ~7 of 30, not ~15
    assert sum(r >= 15 for r in ranks) < 13
    assert len(set(ranks)) > 5


def test_nan_members_are_left_out_and_shown_again():
    ga = GeneticOptimizer(
        6, population_size=6, n_conserve=1, mutation_rate=0.0, mutation_size=0.1, random_state=2
    )
    z = ga.ask()
    fitness = np.array([np.nan, 1.0, 2.0, np.nan, 3.0, 4.0])
    ga.tell(z, fitness)
    assert ga.best_fitness == 4.0
    np.testing.assert_array_equal(ga.best_latent, z[5])
    nxt = ga.ask()
    np.testing.assert_array_equal(nxt[0], z[5])  # conserved best
    np.testing.assert_array_equal(nxt[4:], z[[0, 3]])  # unscored members carried over
    valid = z[[1, 2, 4, 5]]
    for child in nxt[1:4]:  # unmutated children: every gene from a scored parent
        assert np.all(np.any(child[None, :] == valid, axis=0))
        assert not np.any(np.all(child[None, :] == z[[0, 3]], axis=1))


def test_all_nan_keeps_the_population_and_warns(caplog):
    ga = GeneticOptimizer(6, random_state=3)
    z = ga.ask()
    with caplog.at_level(logging.WARNING, logger="bci.evolve"):
        ga.tell(z, np.full(20, np.nan))
    assert "every fitness is NaN" in caplog.text
    assert ga.generation == 1 and ga.best_latent is None and ga.best_fitness == -np.inf
    np.testing.assert_array_equal(ga.ask(), z)


def test_parameter_validation():
    with pytest.raises(ValueError, match="n_conserve"):
        GeneticOptimizer(4, population_size=5, n_conserve=5)
    with pytest.raises(ValueError, match="mutation_rate"):
        GeneticOptimizer(4, mutation_rate=-0.1)
    with pytest.raises(ValueError, match="mutation_size"):
        GeneticOptimizer(4, mutation_size=0.0)
    with pytest.raises(ValueError, match="heritability"):
        GeneticOptimizer(4, heritability=1.5)
    with pytest.raises(ValueError, match="not both"):
        GeneticOptimizer(4, selectivity=2.0, kT_multiplier=2.0)


def test_kT_is_recorded():
    ga = GeneticOptimizer(3, population_size=5, random_state=0)
    assert ga.kT is None
    z = ga.ask()
    ga.tell(z, [1.0, 2.0, 3.0, 4.0, 10.0])
    assert ga.kT == pytest.approx(np.sqrt(10.0) / 2.0)
