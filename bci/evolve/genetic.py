"""XDream's genetic algorithm over generator latents (Xiao & Kreiman, PLoS Comput Biol 2020).

The operators follow XDream's ``Genetic`` optimiser (``willwx/XDream``, ``Optimizers.py``); one
generation, from a population ``X`` with scores ``s`` (``NaN`` = no response):

1. **Ranking.** The members with a score are sorted from best to worst (stable sort, so ties
   keep their order in the population).
2. **Temperature.** ``kT = max(std(s_valid) * k, 1e-8)`` with ``k = 1 / selectivity`` (XDream)
   or ``k = kT_multiplier`` (the Ponce lab's ``kT = 2 * std``). As in XDream, the standard
   deviation is that of the valid scores *before* clipping (step 3); ``np.std`` is the
   population standard deviation (``ddof=0``).
3. **Outlier clipping.** Scores above their 95th percentile (``np.percentile``, linear
   interpolation) are set to it.
4. **Fitness.** ``w_i = exp((c_i - max c) / kT)`` of the clipped scores ``c``; a weight that
   underflows to 0 is raised to the smallest positive weight (XDream does this); selection
   probabilities are ``p = w / sum(w)``.
5. **Selection.** Roulette wheel: for each child two parents are drawn independently (with
   replacement, so both may be the same member) from all ranked members with probabilities
   ``p``: ``index = searchsorted(cumsum(p) / sum(p), u, side="right")`` for ``u ~ U[0, 1)``.
6. **Crossover.** Uniform: each gene comes from parent 1 with probability ``heritability``,
   else from parent 2. With ``fitter_parent_first`` (Ponce preset) the two draws are ordered so
   that parent 1 is the better-ranked one, so ``heritability`` is the "parental skew".
7. **Mutation.** Each gene of each child is mutated with probability ``mutation_rate`` by
   adding ``N(0, mutation_size**2)`` (``mutation_size`` is the standard deviation).
8. **Next population.** ``[the n_conserve best members, unchanged] + [children] +
   [members whose score was NaN, unchanged, to be shown again]`` (XDream carries unscored
   images over). With every score ``NaN`` the population is therefore kept as it was.

Differences from XDream: the random draws come from a numpy ``Generator`` (not
``RandomState``), crossover masks of all children are drawn in one call, ``best_fitness`` is the
best raw score (XDream records the clipped one), and ``heritability`` is used as given in
``[0, 1]`` (XDream folds values below 0.5 to ``1 - h``, which only matters with
``fitter_parent_first``, which XDream does not have).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from bci.evolve.base import Optimizer, SeedLike, as_latent_array, logger

__all__ = [
    "PRESETS",
    "GeneticOptimizer",
    "crossover",
    "mutate",
    "roulette",
    "select_parents",
    "selection_probabilities",
    "temperature",
]

#: Named hyper-parameter sets for :meth:`GeneticOptimizer.preset`.
#:
#: ``"xdream"``: the defaults of XDream's example scripts (with one conserved member).
#: ``"ponce"``: the Ponce lab settings (Ponce et al., Cell 2019): population 40, 10 conserved,
#: mutation rate 0.25 and size 0.75, ``kT = 2 * std(scores)``, and a parental skew of 0.75 (each
#: gene from the fitter parent with probability 0.75).
PRESETS: dict[str, dict[str, Any]] = {
    "xdream": {
        "population_size": 20,
        "mutation_rate": 0.5,
        "mutation_size": 0.5,
        "selectivity": 2.0,
        "heritability": 0.5,
        "n_conserve": 1,
        "fitter_parent_first": False,
    },
    "ponce": {
        "population_size": 40,
        "mutation_rate": 0.25,
        "mutation_size": 0.75,
        "kT_multiplier": 2.0,
        "heritability": 0.75,
        "n_conserve": 10,
        "fitter_parent_first": True,
    },
}

_KT_FLOOR = 1e-8


def _check_scores(scores: ArrayLike) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (drop the NaN scores first)")
    return s


def _temperature_factor(selectivity: float | None, kT_multiplier: float | None) -> float:
    if selectivity is not None and kT_multiplier is not None:
        raise ValueError("give selectivity or kT_multiplier, not both")
    if kT_multiplier is not None:
        if not (math.isfinite(kT_multiplier) and kT_multiplier > 0):
            raise ValueError(f"kT_multiplier must be finite and > 0, got {kT_multiplier}")
        return float(kT_multiplier)
    selectivity = 2.0 if selectivity is None else selectivity
    if not (math.isfinite(selectivity) and selectivity > 0):
        raise ValueError(f"selectivity must be finite and > 0, got {selectivity}")
    return 1.0 / float(selectivity)


def temperature(
    scores: ArrayLike, selectivity: float | None = None, *, kT_multiplier: float | None = None
) -> float:
    """The softmax temperature ``kT = max(std(scores) * k, 1e-8)``.

    Parameters
    ----------
    scores : array_like, shape (n,)
        Finite scores of one generation (unclipped, as in XDream).
    selectivity : float, optional
        ``k = 1 / selectivity`` (XDream); default 2 when ``kT_multiplier`` is not given.
    kT_multiplier : float, optional
        ``k = kT_multiplier`` instead (Ponce: 2).

    Returns
    -------
    float
    """
    s = _check_scores(scores)
    return max(float(np.std(s)) * _temperature_factor(selectivity, kT_multiplier), _KT_FLOOR)


def selection_probabilities(
    scores: ArrayLike, selectivity: float | None = None, *, kT_multiplier: float | None = None
) -> np.ndarray:
    """XDream's parent-selection probabilities: softmax of 95th-percentile-clipped scores.

    ``kT = max(std(scores) * k, 1e-8)`` (unclipped scores), ``c = min(scores, P95(scores))``,
    ``w = exp((c - max c) / kT)`` with underflowed zeros raised to the smallest positive ``w``,
    ``p = w / sum(w)``.

    Parameters
    ----------
    scores : array_like, shape (n,)
        Finite scores.
    selectivity : float, optional
        ``k = 1 / selectivity``; default 2.
    kT_multiplier : float, optional
        ``k = kT_multiplier`` instead.

    Returns
    -------
    np.ndarray, shape (n,), float64
        Probabilities in the order of ``scores``, summing to 1.
    """
    s = _check_scores(scores)
    kT = temperature(s, selectivity, kT_multiplier=kT_multiplier)
    clipped = np.minimum(s, np.percentile(s, 95))
    w = np.exp((clipped - clipped.max()) / kT)
    if np.any(w <= 0):
        w[w <= 0] = w[w > 0].min()
    return w / w.sum()


def roulette(p: ArrayLike, n: int, rng: np.random.Generator) -> np.ndarray:
    """Roulette-wheel selection: ``n`` indices drawn with replacement with probabilities ``p``.

    Parameters
    ----------
    p : array_like, shape (m,)
        Non-negative weights (normalised here).
    n : int
        Number of draws.
    rng : np.random.Generator

    Returns
    -------
    np.ndarray, shape (n,), int64
        ``searchsorted(cumsum(p) / sum(p), u, side="right")`` for ``u ~ U[0, 1)``.
    """
    w = np.asarray(p, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"p must be a non-empty 1-D array of weights >= 0, got {w!r}")
    bins = np.cumsum(w)
    bins /= bins[-1]
    idx = np.searchsorted(bins, rng.random(int(n)), side="right")
    return np.minimum(idx, w.size - 1).astype(np.int64)


def select_parents(
    p: ArrayLike, n: int, rng: np.random.Generator, fitter_first: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Two roulette-wheel draws of ``n`` parents each (first all parent 1s, then parent 2s).

    Parameters
    ----------
    p : array_like, shape (m,)
        Selection probabilities of members ranked best first.
    n : int
        Number of children.
    rng : np.random.Generator
    fitter_first : bool
        Order each pair so that parent 1 is the better ranked (the lower index).

    Returns
    -------
    (np.ndarray, np.ndarray)
        ``(parent1, parent2)`` indices, each ``(n,)`` int64.
    """
    first, second = roulette(p, n, rng), roulette(p, n, rng)
    if fitter_first:
        first, second = np.minimum(first, second), np.maximum(first, second)
    return first, second


def crossover(
    parent1: ArrayLike, parent2: ArrayLike, heritability: float, rng: np.random.Generator
) -> np.ndarray:
    """Uniform crossover: each gene from ``parent1`` with probability ``heritability``.

    Parameters
    ----------
    parent1, parent2 : array_like, same shape
        Parents, e.g. ``(n_children, latent_dim)``.
    heritability : float
        Probability, in [0, 1], that a gene comes from ``parent1``.
    rng : np.random.Generator

    Returns
    -------
    np.ndarray
        ``where(u < heritability, parent1, parent2)`` with ``u ~ U[0, 1)`` per gene.
    """
    a, b = np.asarray(parent1), np.asarray(parent2)
    if a.shape != b.shape:
        raise ValueError(f"parents must have the same shape, got {a.shape} and {b.shape}")
    if not 0.0 <= heritability <= 1.0:
        raise ValueError(f"heritability must be in [0, 1], got {heritability}")
    from_first = rng.random(a.shape) < heritability
    return np.where(from_first, a, b)


def mutate(x: ArrayLike, rate: float, size: float, rng: np.random.Generator) -> np.ndarray:
    """Per-gene Gaussian mutation.

    Parameters
    ----------
    x : array_like
        Genomes, e.g. ``(n, latent_dim)``.
    rate : float
        Probability, in [0, 1], that a gene is mutated.
    size : float
        Standard deviation (>= 0) of the normal noise added to a mutated gene.
    rng : np.random.Generator

    Returns
    -------
    np.ndarray
        A copy of ``x`` (float) in which each gene with ``u < rate`` (``u ~ U[0, 1)``) has
        ``N(0, size**2)`` added.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"mutation rate must be in [0, 1], got {rate}")
    if not size >= 0:
        raise ValueError(f"mutation size must be >= 0, got {size}")
    out = np.array(x, dtype=np.result_type(np.asarray(x).dtype, np.float32), copy=True)
    hit = rng.random(out.shape) < rate
    out[hit] += rng.normal(0.0, size, int(hit.sum()))
    return out


class GeneticOptimizer(Optimizer):
    """XDream's genetic algorithm (see the module docstring for each operator).

    Parameters
    ----------
    latent_dim : int
        Width of one latent.
    population_size : int
        Members per generation (XDream default 20).
    mutation_rate : float
        Probability that a gene of a child is mutated (0.5).
    mutation_size : float
        Standard deviation of a mutation (0.5).
    selectivity : float, optional
        Selection stringency: ``kT = std(scores) / selectivity`` (default 2).
    kT_multiplier : float, optional
        Instead of ``selectivity``: ``kT = std(scores) * kT_multiplier`` (Ponce: 2).
    heritability : float
        Probability that a gene comes from parent 1 (0.5).
    n_conserve : int
        Best members copied unchanged into the next generation (1).
    fitter_parent_first : bool
        Order each pair so that parent 1 is the fitter (then ``heritability`` is the parental
        skew). XDream: False; Ponce preset: True.
    initial : array_like, optional
        ``(population_size, latent_dim)`` first population; default ``N(0, I)`` latents.
    random_state : int, numpy Generator or None
        Seed.
    """

    name = "genetic"

    def __init__(
        self,
        latent_dim: int,
        population_size: int = 20,
        mutation_rate: float = 0.5,
        mutation_size: float = 0.5,
        selectivity: float | None = None,
        kT_multiplier: float | None = None,
        heritability: float = 0.5,
        n_conserve: int = 1,
        fitter_parent_first: bool = False,
        initial: ArrayLike | None = None,
        random_state: SeedLike = None,
    ) -> None:
        super().__init__(latent_dim, population_size, random_state)
        self._set_params(
            {
                "mutation_rate": mutation_rate,
                "mutation_size": mutation_size,
                "selectivity": selectivity,
                "kT_multiplier": kT_multiplier,
                "heritability": heritability,
                "n_conserve": n_conserve,
                "fitter_parent_first": fitter_parent_first,
            }
        )
        shape = (self._population_size, self._latent_dim)
        if initial is None:
            population = self._rng.standard_normal(shape)
        else:
            population = as_latent_array(initial, self._latent_dim, "initial")
            if population.shape != shape:
                raise ValueError(
                    f"initial has shape {population.shape}, expected {shape} (population_size, "
                    "latent_dim)"
                )
        self._pending = np.ascontiguousarray(population, dtype=np.float32)
        self._kT: float | None = None

    @classmethod
    def preset(
        cls, name: str, latent_dim: int, random_state: SeedLike = None, **overrides: Any
    ) -> GeneticOptimizer:
        """A genetic optimiser with a named hyper-parameter set (see :data:`PRESETS`).

        Parameters
        ----------
        name : str
            ``"xdream"`` or ``"ponce"``.
        latent_dim : int
            Width of one latent.
        random_state : int, numpy Generator or None
            Seed.
        **overrides
            Constructor arguments that replace the preset's.

        Returns
        -------
        GeneticOptimizer
        """
        if name not in PRESETS:
            raise ValueError(f"unknown genetic preset {name!r}; known: {', '.join(PRESETS)}")
        params = dict(PRESETS[name])
        if "selectivity" in overrides or "kT_multiplier" in overrides:
            params.pop("selectivity", None)
            params.pop("kT_multiplier", None)
        params.update(overrides)
        return cls(latent_dim, random_state=random_state, **params)

    # -- hyper-parameters ---------------------------------------------------------------------

    def _set_params(self, params: dict) -> None:
        rate, size = float(params["mutation_rate"]), float(params["mutation_size"])
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"mutation_rate must be in [0, 1], got {rate}")
        if not (math.isfinite(size) and size > 0):
            raise ValueError(f"mutation_size must be finite and > 0, got {size}")
        heritability = float(params["heritability"])
        if not 0.0 <= heritability <= 1.0:
            raise ValueError(f"heritability must be in [0, 1], got {heritability}")
        n_conserve = params["n_conserve"]
        if (
            isinstance(n_conserve, bool)
            or not isinstance(n_conserve, int | np.integer)
            or not 0 <= n_conserve < self._population_size
        ):
            raise ValueError(
                f"n_conserve must be an integer in [0, population_size={self._population_size}), "
                f"got {n_conserve!r}"
            )
        sel, mult = params.get("selectivity"), params.get("kT_multiplier")
        self._kT_factor = _temperature_factor(sel, mult)
        self._selectivity = None if mult is not None else (2.0 if sel is None else float(sel))
        self._kT_multiplier = None if mult is None else float(mult)
        self._mutation_rate, self._mutation_size = rate, size
        self._heritability = heritability
        self._n_conserve = int(n_conserve)
        self._fitter_parent_first = bool(params["fitter_parent_first"])

    def _params(self) -> dict:
        return {
            "mutation_rate": self._mutation_rate,
            "mutation_size": self._mutation_size,
            "selectivity": self._selectivity,
            "kT_multiplier": self._kT_multiplier,
            "heritability": self._heritability,
            "n_conserve": self._n_conserve,
            "fitter_parent_first": self._fitter_parent_first,
        }

    @property
    def params(self) -> dict:
        """The hyper-parameters (a copy), ``population_size`` included."""
        return {"population_size": self._population_size, **self._params()}

    @property
    def kT(self) -> float | None:
        """The softmax temperature used by the last breeding step (None before it)."""
        return self._kT

    # -- one generation -----------------------------------------------------------------------

    def _propose(self) -> np.ndarray:  # the population always exists; see _update
        raise AssertionError("unreachable: the genetic population is bred in tell()")

    def _update(self, latents: np.ndarray, fitness: np.ndarray) -> None:
        n, rng = self._population_size, self._rng
        valid = ~np.isnan(fitness)
        valid_idx = np.flatnonzero(valid)
        order = valid_idx[np.argsort(-fitness[valid], kind="stable")]
        ranked, scores = latents[order], fitness[order]
        n_nan = n - valid_idx.size
        n_keep = min(self._n_conserve, ranked.shape[0])
        n_children = n - self._n_conserve - n_nan

        new = np.empty((n, self._latent_dim), dtype=np.float32)
        new[:n_keep] = ranked[:n_keep]
        if n_children > 0:
            mult = self._kT_multiplier
            sel = None if mult is not None else self._selectivity
            self._kT = temperature(scores, sel, kT_multiplier=mult)
            p = selection_probabilities(scores, sel, kT_multiplier=mult)
            first, second = select_parents(p, n_children, rng, self._fitter_parent_first)
            children = crossover(ranked[first], ranked[second], self._heritability, rng)
            children = mutate(children, self._mutation_rate, self._mutation_size, rng)
            new[n_keep : n_keep + n_children] = children
            logger.debug(
                "genetic generation %d: kT=%.4g, best=%.4g",
                self._generation + 1,
                self._kT,
                scores[0],
            )
        if n_nan:
            new[n - n_nan :] = latents[~valid]
        self._pending = new

    # -- state --------------------------------------------------------------------------------

    def _extra_state(self) -> dict:
        return {"kT": self._kT}

    def _load_extra_state(self, state: dict) -> None:
        kT = state.get("kT")
        self._kT = None if kT is None else float(kT)
        shape = (self._population_size, self._latent_dim)
        if self._pending is None or self._pending.shape != shape:
            got = None if self._pending is None else self._pending.shape
            raise ValueError(
                f"genetic state needs a pending population of shape {shape}, got {got}"
            )
