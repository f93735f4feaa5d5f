"""Random search: prior draws every generation, independent of the scores, best kept."""

from __future__ import annotations

import numpy as np

from bci.evolve import RandomSearch


def test_each_generation_is_a_fresh_standard_normal_draw():
    opt = RandomSearch(16, population_size=500, random_state=0)
    z1 = opt.ask()
    opt.tell(z1, np.zeros(500))
    z2 = opt.ask()
    assert not np.array_equal(z1, z2)
    for z in (z1, z2):
        # 8000 N(0, 1) values: s.e. of the mean 0.011, of the std 0.008
        assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.04
    # the draw equals default_rng(seed).standard_normal, generation after generation
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(z1, rng.standard_normal((500, 16)).astype(np.float32))
    np.testing.assert_array_equal(z2, rng.standard_normal((500, 16)).astype(np.float32))


def test_asks_do_not_depend_on_the_scores():
    a, b = RandomSearch(4, random_state=1), RandomSearch(4, random_state=1)
    for g in range(3):
        za, zb = a.ask(), b.ask()
        np.testing.assert_array_equal(za, zb)
        a.tell(za, za[:, 0])
        b.tell(zb, -zb[:, 0] * g)


def test_best_is_the_maximum_over_all_generations():
    opt = RandomSearch(3, population_size=5, random_state=2)
    seen_z, seen_f = [], []
    for g in range(4):
        z = opt.ask()
        f = np.random.default_rng(g).normal(size=5)
        opt.tell(z, f)
        seen_z.append(z)
        seen_f.append(f)
    allz, allf = np.concatenate(seen_z), np.concatenate(seen_f)
    assert opt.best_fitness == allf.max()
    np.testing.assert_array_equal(opt.best_latent, allz[np.argmax(allf)])
    assert opt.generation == 4 and opt.params == {"population_size": 5}
