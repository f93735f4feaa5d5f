"""The ask/tell contract, state round trips and the factory, for every optimiser."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bci.evolve import (
    CMAESOptimizer,
    GeneticOptimizer,
    RandomSearch,
    from_state_dict,
    make_optimizer,
)

NAMES = ["genetic", "cmaes", "random"]
DIM = 8


def sphere(z: np.ndarray, target: np.ndarray) -> np.ndarray:
    return -np.sum((z - target) ** 2, axis=1)


def run(opt, generations: int, target: np.ndarray) -> list[np.ndarray]:
    asks = []
    for _ in range(generations):
        z = opt.ask()
        asks.append(z)
        opt.tell(z, sphere(z, target))
    return asks


@pytest.fixture
def target():
    return np.random.default_rng(123).standard_normal(DIM)


# -- ask / tell -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_ask_shape_dtype_and_idempotence(name):
    opt = make_optimizer(name, DIM, random_state=0)
    z = opt.ask()
    assert z.shape == (opt.population_size, DIM) and z.dtype == np.float32
    assert z.flags.c_contiguous
    np.testing.assert_array_equal(opt.ask(), z)  # same latents until told
    z[0, 0] = 99.0  # the caller's copy, not the optimiser's
    assert opt.ask()[0, 0] != 99.0
    assert opt.generation == 0


@pytest.mark.parametrize("name", NAMES)
def test_tell_checks_the_latents_and_fitness(name, target):
    opt = make_optimizer(name, DIM, random_state=0)
    with pytest.raises(ValueError, match="without a pending ask"):
        opt.tell(np.zeros((opt.population_size, DIM)), np.zeros(opt.population_size))
    z = opt.ask()
    n = len(z)
    other = z.copy()
    other[3, 2] += 1.0
    with pytest.raises(ValueError, match="not the latents of the last ask.*1 rows differ"):
        opt.tell(other, np.zeros(n))
    with pytest.raises(ValueError, match=rf"shape \({n - 1}, {DIM}\).*returned \({n}, {DIM}\)"):
        opt.tell(z[:-1], np.zeros(n - 1))
    with pytest.raises(ValueError, match=rf"fitness has shape \({n - 1},\).*\({n},\)"):
        opt.tell(z, np.zeros(n - 1))
    with pytest.raises(ValueError, match=rf"fitness has shape \({n}, 1\)"):
        opt.tell(z, np.zeros((n, 1)))
    with pytest.raises(ValueError, match="inf at index 2"):
        opt.tell(z, np.where(np.arange(n) == 2, np.inf, 0.0))
    assert opt.generation == 0  # nothing above was accepted
    opt.tell(z.astype(np.float64), list(sphere(z, target)))  # float64 copies and lists are fine
    assert opt.generation == 1
    with pytest.raises(ValueError, match="without a pending ask"):
        opt.tell(z, sphere(z, target))


@pytest.mark.parametrize("name", NAMES)
def test_error_messages_are_one_line(name):
    opt = make_optimizer(name, DIM, random_state=0)
    z = opt.ask()
    for args in [(z[:2], np.zeros(2)), (z, np.zeros(3)), (z + 1, np.zeros(len(z)))]:
        with pytest.raises(ValueError) as err:
            opt.tell(*args)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_best_tracking_ignores_nan(name):
    opt = make_optimizer(name, DIM, random_state=1)
    assert opt.best_latent is None and opt.best_fitness == -np.inf
    z = opt.ask()
    f = np.linspace(0.0, 1.0, len(z))
    f[-1] = np.nan  # would be the best
    opt.tell(z, f)
    assert opt.best_fitness == f[-2]
    np.testing.assert_array_equal(opt.best_latent, z[-2])
    z2 = opt.ask()
    opt.tell(z2, np.full(len(z2), -5.0))  # worse: the best stays
    assert opt.best_fitness == f[-2]
    np.testing.assert_array_equal(opt.best_latent, z[-2])
    assert opt.best_latent.dtype == np.float32 and opt.best_latent.shape == (DIM,)


@pytest.mark.parametrize("name", NAMES)
def test_all_nan_generation_is_asked_again(name, caplog):
    opt = make_optimizer(name, DIM, random_state=2)
    z = opt.ask()
    with caplog.at_level("WARNING", logger="bci.evolve"):
        opt.tell(z, np.full(len(z), np.nan))
    assert "every fitness is NaN" in caplog.text
    assert opt.generation == 1
    np.testing.assert_array_equal(opt.ask(), z)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_runs_are_reproducible_and_seeds_matter(name, target):
    a = run(make_optimizer(name, DIM, random_state=7), 3, target)
    b = run(make_optimizer(name, DIM, random_state=7), 3, target)
    c = run(make_optimizer(name, DIM, random_state=8), 3, target)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[-1], c[-1])


@pytest.mark.parametrize("name", NAMES)
def test_generator_as_random_state(name, target):
    a = run(make_optimizer(name, DIM, random_state=np.random.default_rng(4)), 2, target)
    b = run(make_optimizer(name, DIM, random_state=np.random.default_rng(4)), 2, target)
    np.testing.assert_array_equal(a[-1], b[-1])
    with pytest.raises(ValueError, match="random_state"):
        make_optimizer(name, DIM, random_state="seed")


# -- state ----------------------------------------------------------------------------------------


def _check_plain(value, path="state"):
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), f"{path} has a non-str key {k!r}"
            _check_plain(v, f"{path}[{k!r}]")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{path}[{i}]")
    else:
        assert value is None or isinstance(value, str | bool | int | float | np.ndarray), (
            f"{path} is a {type(value).__name__}"
        )
        if isinstance(value, int) and not isinstance(value, bool):
            assert abs(value) < 2**63, f"{path} does not fit 64 bits"


def _json_round_trip(state: dict) -> dict:
    text = json.dumps(state, default=lambda a: a.tolist(), allow_nan=False)
    return json.loads(text)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("through_json", [False, True])
def test_state_round_trip_continues_bit_for_bit(name, through_json, target):
    original = make_optimizer(name, DIM, random_state=11)
    run(original, 3, target)
    state = original.state_dict()
    _check_plain(state)
    if through_json:
        state = _json_round_trip(state)
    later = run(original, 3, target)

    fresh = make_optimizer(name, DIM, random_state=999)  # a different seed: the state decides
    fresh.load_state_dict(state)
    assert fresh.generation == 3
    resumed = run(fresh, 3, target)
    for x, y in zip(later, resumed, strict=True):
        np.testing.assert_array_equal(x, y)
    assert fresh.best_fitness == original.best_fitness
    np.testing.assert_array_equal(fresh.best_latent, original.best_latent)
    assert fresh.generation == original.generation == 6

    rebuilt = from_state_dict(state)
    assert type(rebuilt) is type(original)
    np.testing.assert_array_equal(run(rebuilt, 1, target)[0], later[0])


@pytest.mark.parametrize("name", NAMES)
def test_state_saved_between_ask_and_tell(name, target):
    original = make_optimizer(name, DIM, random_state=12)
    run(original, 2, target)
    z = original.ask()
    state = original.state_dict()
    assert state["asked"] is True
    np.testing.assert_array_equal(state["pending"], z)
    original.tell(z, sphere(z, target))
    fresh = from_state_dict(state)
    fresh.tell(z, sphere(z, target))  # the pending ask is accepted
    np.testing.assert_array_equal(fresh.ask(), original.ask())


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_with_nan_generations(name, target):
    original = make_optimizer(name, DIM, random_state=13)
    for g in range(4):
        z = original.ask()
        f = sphere(z, target)
        f[g::3] = np.nan
        if g == 2:
            f[:] = np.nan
        original.tell(z, f)
    state = original.state_dict()
    fresh = from_state_dict(_json_round_trip(state))
    np.testing.assert_array_equal(fresh.ask(), original.ask())


def test_load_rejects_foreign_states():
    ga = GeneticOptimizer(DIM, random_state=0)
    cm = CMAESOptimizer(DIM, random_state=0)
    with pytest.raises(ValueError, match="state is of a 'cmaes' optimiser, not 'genetic'"):
        ga.load_state_dict(cm.state_dict())
    with pytest.raises(ValueError, match="latent_dim 8, this optimiser 4"):
        GeneticOptimizer(4).load_state_dict(ga.state_dict())
    with pytest.raises(ValueError, match="format"):
        ga.load_state_dict({"a": 1})
    state = ga.state_dict()
    del state["pending"]
    with pytest.raises(ValueError, match="missing 'pending'"):
        GeneticOptimizer(DIM).load_state_dict(state)


def test_cmaes_replay_mismatch_is_detected(target):
    opt = CMAESOptimizer(DIM, random_state=0)
    run(opt, 2, target)
    state = opt.state_dict()
    state["history"] = state["history"].copy()
    state["history"][0, 0] += 1.0  # another history than the one that led to this mean
    with pytest.raises(ValueError, match="did not reproduce the saved mean"):
        CMAESOptimizer(DIM).load_state_dict(state)


# -- factory --------------------------------------------------------------------------------------


def test_make_optimizer():
    assert isinstance(make_optimizer("genetic", DIM), GeneticOptimizer)
    assert isinstance(make_optimizer("cmaes", DIM), CMAESOptimizer)
    assert isinstance(make_optimizer("random", DIM), RandomSearch)
    opt = make_optimizer("genetic", DIM, population_size=10, n_conserve=2, random_state=0)
    assert opt.population_size == 10 and opt.params["n_conserve"] == 2
    ponce = make_optimizer("genetic", DIM, preset="ponce", random_state=0)
    assert ponce.population_size == 40 and ponce.params["kT_multiplier"] == 2.0
    assert make_optimizer("cmaes", DIM).population_size == 40
    assert make_optimizer("random", DIM).population_size == 20


def test_make_optimizer_errors():
    with pytest.raises(ValueError) as err:
        make_optimizer("pso", DIM)
    assert str(err.value) == "unknown optimizer 'pso'; known: 'cmaes', 'genetic', 'random'"
    with pytest.raises(ValueError, match="preset= is only for the 'genetic' optimizer"):
        make_optimizer("cmaes", DIM, preset="ponce")
    with pytest.raises(TypeError):
        make_optimizer("random", DIM, mutation_rate=0.1)
    with pytest.raises(ValueError, match="latent_dim"):
        make_optimizer("random", 0)
