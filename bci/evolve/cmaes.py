"""CMA-ES over generator latents, on pycma (Hansen's ``cma`` package).

Maximises fitness: pycma minimises, so it is told ``-fitness``.

* **Missing responses.** pycma cannot take ``NaN``, so a ``NaN`` fitness is replaced, for
  pycma only, by the worst (lowest) valid fitness of the same generation: the unanswered latent
  counts as the generation's worst and pulls nothing towards itself. It is not used for best
  tracking. With every fitness ``NaN`` pycma is not told anything and the same population is
  asked again.
* **Randomness.** pycma draws its samples from the *global* ``np.random`` (seeded with its
  ``seed`` option in its constructor) and also draws one ``np.random.rand`` per ask for its
  stochastic rounding of the number of mirrored samples. Every pycma call is therefore run with a
  private global-RNG state swapped in and the caller's restored afterwards: pycma never sees or
  disturbs the caller's ``np.random`` stream, and the sequence is fully determined by the seed
  (drawn once from ``random_state``). This is not thread-safe: do not use ``np.random`` in
  another thread while asking or telling.
* **State.** pycma's ``CMAEvolutionStrategy`` is not JSON-able, so :meth:`state_dict` stores the
  construction arguments (seed, ``x0``, ``sigma0``, options) and the history of the fitness
  vectors told to pycma (after ``NaN`` replacement), plus pycma's current mean as a check.
  :meth:`load_state_dict` re-creates the strategy and replays the history (ask, tell the
  recorded fitness), which reproduces pycma's state bit for bit because pycma is deterministic
  given its random stream; the replayed mean (and the pending population, if any) are compared
  with the saved ones, and a mismatch (another pycma/numpy/BLAS build) is an error. Replay costs
  about a millisecond per generation.
* **Output.** pycma's printing and log files are off (``verbose=-9``, ``verb_log=0``,
  ``verb_disp=0``); its warnings are routed to the ``bci.evolve`` logger at debug level.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import cma
import numpy as np
from numpy.typing import ArrayLike

from bci.evolve.base import Optimizer, SeedLike, logger

__all__ = ["CMAESOptimizer"]

T = TypeVar("T")

_RESERVED = {"popsize", "seed", "verbose", "verb_log", "verb_disp", "verb_filenameprefix"}


class CMAESOptimizer(Optimizer):
    """Covariance matrix adaptation evolution strategy (pycma), maximising fitness.

    Parameters
    ----------
    latent_dim : int
        Width of one latent.
    population_size : int
        pycma's ``popsize`` (default 40; pycma's own default for 32-d would be 14).
    sigma0 : float
        Initial step size, in units of the prior's standard deviation (latents are ``N(0, I)``).
        ``sigma0 = 1`` with ``x0 = 0`` would make the first generation a draw from the prior
        itself (random search, then adaptation), but the whole population then stays wide for
        long and its mean response is low, worst under noise. The default 0.3 starts from
        variations of the prior's mean image; step-size adaptation widens the search as
        needed. In ``tools/bench_evolve.py`` (in-silico units, 3000 evaluations, noise
        sigma 0.5) the final population's normalized activation was 0.76, 0.87, 0.83, 0.71,
        0.59 and 0.50 for sigma0 0.1, 0.2, 0.3, 0.5, 1 and 2 (2 units, 1 repeat each).
    x0 : array_like, optional
        ``(latent_dim,)`` initial mean; default zeros (the prior's mean).
    options : dict, optional
        Further pycma options (JSON-able values), e.g. ``{"CMA_diagonal": True}``. The
        population size, seed and output options are set here and may not be given.
    random_state : int, numpy Generator or None
        Seed; one integer is drawn from it to seed pycma.
    """

    name = "cmaes"

    def __init__(
        self,
        latent_dim: int,
        population_size: int = 40,
        sigma0: float = 0.3,
        x0: ArrayLike | None = None,
        options: dict[str, Any] | None = None,
        random_state: SeedLike = None,
    ) -> None:
        super().__init__(latent_dim, population_size, random_state)
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2 for CMA-ES, got {population_size}")
        if x0 is None:
            mean0 = np.zeros(self._latent_dim)
        else:
            mean0 = np.asarray(x0, dtype=np.float64)
            if mean0.shape != (self._latent_dim,):
                raise ValueError(f"x0 must have shape ({self._latent_dim},), got {mean0.shape}")
        self._set_params(
            {
                "sigma0": sigma0,
                "x0": mean0.tolist(),
                "options": dict(options or {}),
                "seed": int(self._rng.integers(1, 2**31 - 1)),
            }
        )
        self._history: list[np.ndarray] = []
        self._solutions: list[np.ndarray] | None = None  # pycma's float64 copy of _pending
        self._es = self._new_strategy()

    # -- hyper-parameters ---------------------------------------------------------------------

    def _set_params(self, params: dict) -> None:
        sigma0 = float(params["sigma0"])
        if not (math.isfinite(sigma0) and sigma0 > 0):
            raise ValueError(f"sigma0 must be finite and > 0, got {sigma0}")
        x0 = np.asarray(params["x0"], dtype=np.float64)
        if x0.shape != (self._latent_dim,) or not np.all(np.isfinite(x0)):
            raise ValueError(f"x0 must be finite with shape ({self._latent_dim},), got {x0.shape}")
        options = dict(params["options"])
        reserved = sorted(_RESERVED & set(options))
        if reserved:
            raise ValueError(
                f"pycma options {reserved} are set by CMAESOptimizer "
                "(use population_size and random_state)"
            )
        self._sigma0, self._x0, self._options = sigma0, x0, options
        self._seed = int(params["seed"])

    def _params(self) -> dict:
        return {
            "sigma0": self._sigma0,
            "x0": self._x0.tolist(),
            "options": dict(self._options),
            "seed": self._seed,
        }

    @property
    def params(self) -> dict:
        """The hyper-parameters (a copy), ``population_size`` included."""
        return {"population_size": self._population_size, **self._params()}

    @property
    def mean(self) -> np.ndarray:
        """pycma's current distribution mean, ``(latent_dim,)`` float32."""
        return np.asarray(self._es.mean, dtype=np.float32)

    @property
    def sigma(self) -> float:
        """pycma's current overall step size."""
        return float(self._es.sigma)

    # -- pycma, isolated from the global RNG --------------------------------------------------

    def _isolated(self, fn: Callable[[], T], state: Any = None) -> T:
        """Run ``fn`` with this optimiser's private ``np.random`` state, restoring the caller's."""
        caller = np.random.get_state()  # noqa: NPY002 (pycma's global RNG)
        try:
            np.random.set_state(self._np_state if state is None else state)  # noqa: NPY002
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = fn()
            for w in caught:
                logger.debug("pycma: %s", w.message)
            self._np_state = np.random.get_state()  # noqa: NPY002 (pycma's global RNG)
        finally:
            np.random.set_state(caller)  # noqa: NPY002
        return out

    def _new_strategy(self) -> cma.CMAEvolutionStrategy:
        opts = {
            **self._options,
            "popsize": self._population_size,
            "seed": self._seed,  # pycma calls np.random.seed(seed) in its constructor
            "verbose": -9,
            "verb_log": 0,
            "verb_disp": 0,
        }
        return self._isolated(
            lambda: cma.CMAEvolutionStrategy(self._x0.copy(), self._sigma0, opts),
            state=np.random.RandomState(0).get_state(),  # placeholder; pycma reseeds
        )

    def _propose(self) -> np.ndarray:
        solutions = self._isolated(self._es.ask)
        self._solutions = [np.asarray(x, dtype=np.float64) for x in solutions]
        return np.asarray(self._solutions, dtype=np.float32)

    def _update(self, latents: np.ndarray, fitness: np.ndarray) -> None:
        f = fitness.copy()
        missing = np.isnan(f)
        if missing.any():
            f[missing] = np.min(f[~missing])
        self._tell_pycma(f)
        self._history.append(f)
        self._pending = None

    def _tell_pycma(self, fitness: np.ndarray) -> None:
        solutions = self._solutions
        assert solutions is not None
        self._isolated(lambda: self._es.tell(solutions, (-fitness).tolist()))
        self._solutions = None

    # -- state --------------------------------------------------------------------------------

    def _extra_state(self) -> dict:
        history = (
            np.stack(self._history)
            if self._history
            else np.empty((0, self._population_size), dtype=np.float64)
        )
        return {"history": history, "mean": np.asarray(self._es.mean, dtype=np.float64)}

    def _load_extra_state(self, state: dict) -> None:
        for key in ("history", "mean"):
            if key not in state:
                raise ValueError(f"cmaes state is missing {key!r}")
        history = np.asarray(state["history"], dtype=np.float64).reshape(-1, self._population_size)
        if not np.all(np.isfinite(history)):
            raise ValueError("cmaes state history contains NaN or inf")
        pending = self._pending
        self._es = self._new_strategy()
        self._history = []
        for f in history:
            self._propose()
            self._tell_pycma(f)
            self._history.append(f.copy())
        saved_mean = np.asarray(state["mean"], dtype=np.float64)
        if not np.array_equal(np.asarray(self._es.mean, dtype=np.float64), saved_mean):
            raise ValueError(
                "replaying the CMA-ES history did not reproduce the saved mean "
                f"(pycma {cma.__version__}; saved by another pycma/numpy build?)"
            )
        if pending is not None:
            replayed = self._propose()
            if not np.array_equal(replayed, pending):
                raise ValueError(
                    "replaying the CMA-ES history did not reproduce the saved pending population"
                )
            self._pending = pending
