"""CMA-ES on pycma: maximisation, NaN handling, RNG isolation, and beating random search."""

from __future__ import annotations

import numpy as np
import pytest

from bci.evolve import CMAESOptimizer, GeneticOptimizer, RandomSearch

DIM = 32


def sphere(z: np.ndarray, target: np.ndarray) -> np.ndarray:
    return -np.sum((z - target) ** 2, axis=1)


def optimise(opt, target: np.ndarray, budget: int = 3000) -> float:
    while (opt.generation + 1) * opt.population_size <= budget:
        z = opt.ask()
        opt.tell(z, sphere(z, target))
    return opt.best_fitness


@pytest.fixture(scope="module")
def target():
    return np.random.default_rng(2024).standard_normal(DIM)


def test_first_generation_is_centred_on_x0_with_sigma0():
    x0 = np.linspace(-1.0, 1.0, DIM)
    opt = CMAESOptimizer(DIM, population_size=400, sigma0=0.1, x0=x0, random_state=0)
    z = opt.ask()
    assert z.shape == (400, DIM) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), x0, atol=5 * 0.1 / np.sqrt(400))
    assert abs(z.std(axis=0).mean() - 0.1) < 0.01
    np.testing.assert_array_equal(opt.mean, x0.astype(np.float32))
    assert opt.sigma == 0.1


def test_default_first_generation_is_centred_on_the_prior_mean():
    z = CMAESOptimizer(DIM, population_size=1000, random_state=1).ask()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 0.3) < 0.01  # sigma0 = 0.3, x0 = 0
    assert CMAESOptimizer(DIM).params["sigma0"] == 0.3


def test_it_maximises(target):
    opt = CMAESOptimizer(DIM, random_state=0)
    start = sphere(opt.ask(), target).mean()
    optimise(opt, target, budget=1200)
    end = sphere(opt.ask(), target).mean()
    assert end > start / 5  # the mean squared distance shrank more than fivefold
    assert np.sum((opt.mean - target) ** 2) < 0.1 * np.sum(target**2)


@pytest.mark.parametrize("seed", [0, 1])
def test_cmaes_and_genetic_beat_random_search(seed, target):
    # 3000 evaluations on -||z - z*||^2 in 32-d. Random search's best is about -20 (the nearest
    # of 3000 prior draws), the genetic algorithm's about -4 and CMA-ES's below -0.5.
    rand = optimise(RandomSearch(DIM, random_state=seed), target)
    ga = optimise(GeneticOptimizer(DIM, random_state=seed), target)
    cma = optimise(CMAESOptimizer(DIM, random_state=seed), target)
    assert rand < -10.0
    assert ga > rand / 3.0  # at least three times closer (squared distance) than random
    assert cma > rand / 20.0
    assert cma > ga


def test_nan_is_replaced_by_the_generation_worst_for_pycma(target):
    opt = CMAESOptimizer(DIM, population_size=10, random_state=3)
    z = opt.ask()
    f = sphere(z, target)
    f[[2, 7]] = np.nan
    opt.tell(z, f)
    told = opt.state_dict()["history"][-1]
    expected = f.copy()
    expected[[2, 7]] = np.nanmin(f)
    np.testing.assert_array_equal(told, expected)
    assert opt.best_fitness == np.nanmax(f)
    assert not np.array_equal(opt.ask(), z)  # a normal update happened


def test_nan_counts_as_the_worst_not_as_a_winner():
    # fitness = z[0]; the unanswered samples are the ones with the largest z[0]. Treated as the
    # worst, they must not drag the mean towards +z[0]: the mean moves the other way.
    opt = CMAESOptimizer(4, population_size=20, random_state=4)
    for _ in range(5):
        z = opt.ask()
        f = -z[:, 0].astype(np.float64)  # maximise -z0 ...
        f[np.argsort(z[:, 0])[-5:]] = np.nan  # ... and the 5 largest z0 never answer
        opt.tell(z, f)
    assert opt.mean[0] < -0.5


@pytest.fixture
def global_rng():
    """The legacy global numpy RNG (what pycma uses), restored after the test."""
    saved = np.random.get_state()  # noqa: NPY002
    yield np.random.mtrand._rand
    np.random.set_state(saved)  # noqa: NPY002


def test_global_numpy_rng_is_neither_used_nor_disturbed(global_rng, target):
    global_rng.seed(5)
    expected = global_rng.random_sample(3)
    global_rng.seed(5)
    opt = CMAESOptimizer(DIM, population_size=12, random_state=6)
    for _ in range(3):
        z = opt.ask()
        opt.tell(z, sphere(z, target))
    np.testing.assert_array_equal(global_rng.random_sample(3), expected)  # no draws consumed

    # and pycma's draws do not depend on the caller's global state
    def asks(global_seed):
        global_rng.seed(global_seed)
        o = CMAESOptimizer(DIM, population_size=12, random_state=6)
        out = []
        for _ in range(3):
            global_rng.random_sample(global_seed + 1)
            z = o.ask()
            out.append(z)
            o.tell(z, sphere(z, target))
        return np.stack(out)

    np.testing.assert_array_equal(asks(1), asks(2))


def test_reserved_and_bad_options():
    with pytest.raises(ValueError, match="popsize"):
        CMAESOptimizer(DIM, options={"popsize": 10})
    with pytest.raises(ValueError, match="sigma0"):
        CMAESOptimizer(DIM, sigma0=0.0)
    with pytest.raises(ValueError, match=r"x0 must have shape \(32,\), got \(3,\)"):
        CMAESOptimizer(DIM, x0=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="population_size must be >= 2"):
        CMAESOptimizer(DIM, population_size=1)
    diag = CMAESOptimizer(DIM, options={"CMA_diagonal": True}, random_state=0)
    assert diag.params["options"] == {"CMA_diagonal": True}


def test_pycma_prints_and_writes_nothing(tmp_path, monkeypatch, capsys, target):
    monkeypatch.chdir(tmp_path)
    opt = CMAESOptimizer(DIM, random_state=0)
    optimise(opt, target, budget=400)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert list(tmp_path.iterdir()) == []
