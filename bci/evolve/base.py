"""The ask/tell interface shared by every optimiser over generator latents, and its state helpers.

An optimiser proposes a population of latents (:meth:`Optimizer.ask`), the caller renders and
shows them and measures one fitness per latent (a neural response), and hands both back
(:meth:`Optimizer.tell`); the optimiser then breeds or samples the next population. Latents are
``(n, latent_dim)`` float32 everywhere.

Contract, common to all optimisers:

* ``ask()`` is idempotent until the next ``tell()``: asking twice returns the same latents.
* ``tell(latents, fitness)`` takes exactly the latents of the last ask (else ``ValueError``) and
  one fitness per latent. ``NaN`` marks a latent whose response never came: it is left out of
  selection and of best tracking. If every fitness of a generation is ``NaN`` the population is
  kept (the next ask returns the same latents) and a warning is logged. ``±inf`` is an error.
* ``generation`` counts completed tells (an all-``NaN`` tell counts too).
* ``state_dict()`` holds only plain JSON-able values (str, int, float, bool, None, lists, dicts)
  and numpy arrays, no pickle; random generator states are stored as JSON text, because PCG64's
  128-bit integers do not fit msgpack. A fresh optimiser given it with ``load_state_dict`` asks
  exactly what the original would have asked, bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "Optimizer",
    "SeedLike",
    "check_random_state",
    "rng_from_state",
    "rng_to_state",
]

logger = logging.getLogger(__name__)

SeedLike = int | np.integer | np.random.Generator | None

#: ``state_dict()["format"]`` of every optimiser state.
STATE_FORMAT = "bci.evolve"
#: ``state_dict()["version"]``; bumped when the layout changes.
STATE_VERSION = 1


def check_random_state(random_state: SeedLike) -> np.random.Generator:
    """Turn a seed into a numpy Generator, like scikit-learn's ``check_random_state``.

    Parameters
    ----------
    random_state : int, numpy Generator or None
        ``None``: fresh OS entropy; an int: a new ``default_rng(seed)``; a Generator: used as is
        (shared with the caller, so its draws interleave with the caller's).

    Returns
    -------
    np.random.Generator
    """
    if random_state is None or (
        isinstance(random_state, int | np.integer) and not isinstance(random_state, bool)
    ):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise ValueError(
        f"random_state must be an int, a numpy Generator or None, got {type(random_state).__name__}"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def rng_to_state(rng: np.random.Generator) -> str:
    """Serialise a Generator's bit-generator state as JSON text.

    Parameters
    ----------
    rng : np.random.Generator

    Returns
    -------
    str
        JSON of ``rng.bit_generator.state`` (arrays as lists).
    """
    return json.dumps(_jsonable(rng.bit_generator.state))


def rng_from_state(text: str) -> np.random.Generator:
    """Re-create a Generator from :func:`rng_to_state` text.

    Parameters
    ----------
    text : str
        JSON written by :func:`rng_to_state`.

    Returns
    -------
    np.random.Generator
        A new Generator in exactly the saved state.
    """
    if not isinstance(text, str):
        raise ValueError(f"rng state must be JSON text, got {type(text).__name__}")
    state = json.loads(text)
    name = state.get("bit_generator") if isinstance(state, dict) else None
    bit_generator_cls = getattr(np.random, str(name), None)
    if not (
        isinstance(bit_generator_cls, type)
        and issubclass(bit_generator_cls, np.random.BitGenerator)
    ):
        raise ValueError(f"rng state names an unknown bit generator {name!r}")
    bit_generator = bit_generator_cls()
    if isinstance(state.get("state"), dict) and "key" in state["state"]:  # MT19937
        state["state"]["key"] = np.asarray(state["state"]["key"], dtype=np.uint32)
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def as_latent_array(latents: ArrayLike, latent_dim: int, name: str = "latents") -> np.ndarray:
    """Validate ``(n, latent_dim)`` finite latents and return them as C-contiguous float32.

    Parameters
    ----------
    latents : array_like
        The latents.
    latent_dim : int
        Expected width.
    name : str
        What to call them in error messages.

    Returns
    -------
    np.ndarray, shape (n, latent_dim), float32
    """
    z = np.asarray(latents)
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise ValueError(f"{name} must have shape (n, {latent_dim}), got {z.shape}")
    if not np.issubdtype(z.dtype, np.number) or np.iscomplexobj(z):
        raise ValueError(f"{name} must be real numbers, got dtype {z.dtype}")
    z = np.ascontiguousarray(z, dtype=np.float32)
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{name} contain NaN or inf ({int((~np.isfinite(z)).sum())} values)")
    return z


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Optimizer(ABC):
    """Base class of the ask/tell optimisers over ``(n, latent_dim)`` float32 latents.

    Subclasses implement :meth:`_propose` (the next population, drawn when first asked),
    :meth:`_update` (learn from one generation whose fitness is not all ``NaN``) and the
    ``_extra_state`` / ``_load_extra_state`` pair.

    Parameters
    ----------
    latent_dim : int
        Width of one latent.
    population_size : int
        Latents per generation.
    random_state : int, numpy Generator or None
        Seed or Generator for every random draw of the optimiser.
    """

    #: Name in :func:`bci.evolve.make_optimizer` and in ``state_dict()["optimizer"]``.
    name: str = "optimizer"

    def __init__(
        self, latent_dim: int, population_size: int, random_state: SeedLike = None
    ) -> None:
        self._latent_dim = _check_int(latent_dim, "latent_dim", 1)
        self._population_size = _check_int(population_size, "population_size", 1)
        self._rng = check_random_state(random_state)
        self._generation = 0
        self._best_latent: np.ndarray | None = None
        self._best_fitness = -math.inf
        self._pending: np.ndarray | None = None  # the population the next ask returns
        self._asked = False  # whether the pending population has been handed out

    # -- the interface -----------------------------------------------------------------------

    @property
    def latent_dim(self) -> int:
        """Width of one latent."""
        return self._latent_dim

    @property
    def population_size(self) -> int:
        """Number of latents per ask."""
        return self._population_size

    @property
    def generation(self) -> int:
        """Number of completed tells."""
        return self._generation

    @property
    def best_latent(self) -> np.ndarray | None:
        """The latent with the best fitness told so far, ``(latent_dim,)`` float32 (a copy).

        ``None`` until a generation with at least one non-``NaN`` fitness has been told.
        """
        return None if self._best_latent is None else self._best_latent.copy()

    @property
    def best_fitness(self) -> float:
        """The best fitness told so far (``-inf`` until one non-``NaN`` fitness was told)."""
        return self._best_fitness

    def ask(self) -> np.ndarray:
        """Return the population to evaluate next.

        Returns
        -------
        np.ndarray, shape (population_size, latent_dim), float32
            A copy; the same latents until :meth:`tell` is called.
        """
        if self._pending is None:
            self._pending = np.ascontiguousarray(self._propose(), dtype=np.float32)
        self._asked = True
        return self._pending.copy()

    def tell(self, latents: ArrayLike, fitness: ArrayLike) -> None:
        """Report the fitness of the latents of the last :meth:`ask`.

        Parameters
        ----------
        latents : array_like, shape (population_size, latent_dim)
            Exactly the latents the last ask returned (compared as float32).
        fitness : array_like, shape (population_size,)
            One fitness per latent, higher is better; ``NaN`` for a missing response.
        """
        if not self._asked or self._pending is None:
            raise ValueError("tell() called without a pending ask(); call ask() first")
        expected = self._pending
        z = np.asarray(latents)
        if z.shape != expected.shape:
            raise ValueError(
                f"latents have shape {z.shape} but the last ask() returned {expected.shape}"
            )
        try:
            z32 = z.astype(np.float32, copy=False)
        except (TypeError, ValueError):
            raise ValueError(f"latents must be real numbers, got dtype {z.dtype}") from None
        if not np.array_equal(z32, expected):
            n_rows = int(np.sum(np.any(z32 != expected, axis=1)))
            raise ValueError(
                "latents passed to tell() are not the latents of the last ask() "
                f"(shape {expected.shape}; {n_rows} rows differ)"
            )
        f = np.asarray(fitness)
        if f.shape != (len(expected),):
            raise ValueError(
                f"fitness has shape {f.shape} but the last ask() returned {len(expected)} latents "
                f"(expected shape ({len(expected)},))"
            )
        if not np.issubdtype(f.dtype, np.number) or np.iscomplexobj(f):
            raise ValueError(f"fitness must be real numbers, got dtype {f.dtype}")
        f = f.astype(np.float64)
        if np.any(np.isinf(f)):
            raise ValueError(
                f"fitness contains inf at index {int(np.flatnonzero(np.isinf(f))[0])}; "
                "use NaN for a missing response"
            )
        valid = ~np.isnan(f)
        number = self._generation + 1
        if not valid.any():
            logger.warning(
                "%s generation %d: every fitness is NaN; keeping the population to ask again",
                self.name,
                number,
            )
            self._generation, self._asked = number, False
            return
        if not valid.all():
            logger.info(
                "%s generation %d: %d of %d fitness values are NaN; they are left out of selection",
                self.name,
                number,
                int((~valid).sum()),
                len(f),
            )
        self._update(expected, f)
        best = int(np.flatnonzero(valid)[np.argmax(f[valid])])
        if f[best] > self._best_fitness:
            self._best_fitness = float(f[best])
            self._best_latent = expected[best].copy()
        self._generation, self._asked = number, False

    # -- subclass hooks ----------------------------------------------------------------------

    @abstractmethod
    def _propose(self) -> np.ndarray:
        """Draw the next population, ``(population_size, latent_dim)``."""

    @abstractmethod
    def _update(self, latents: np.ndarray, fitness: np.ndarray) -> None:
        """Learn from one generation; ``fitness`` (float64) has at least one non-NaN value.

        Must set ``self._pending`` to the next population, or to ``None`` to have
        :meth:`_propose` draw it at the next ask.
        """

    def _params(self) -> dict:
        """Hyper-parameters (JSON-able), stored in the state and checked on load."""
        return {}

    def _extra_state(self) -> dict:
        """Subclass state beyond the common fields."""
        return {}

    def _load_extra_state(self, state: dict) -> None:  # noqa: B027 (optional hook)
        """Restore what :meth:`_extra_state` saved (the common fields are already restored)."""

    # -- state -------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where this optimiser is.

        Returns
        -------
        dict
            Common keys: ``format`` (``"bci.evolve"``), ``version`` (int), ``optimizer`` (name),
            ``latent_dim``, ``population_size``, ``params`` (dict of hyper-parameters),
            ``generation``, ``best_fitness`` (float or None), ``best_latent`` (float32
            ``(latent_dim,)`` or None), ``pending`` (float32 ``(n, latent_dim)`` population the
            next ask returns, or None), ``asked`` (bool: pending was handed out and awaits its
            tell), ``rng`` (JSON text); plus optimiser-specific keys. Arrays are copies.
        """
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "optimizer": self.name,
            "latent_dim": self._latent_dim,
            "population_size": self._population_size,
            "params": self._params(),
            "generation": self._generation,
            "best_fitness": None if self._best_latent is None else self._best_fitness,
            "best_latent": None if self._best_latent is None else self._best_latent.copy(),
            "pending": None if self._pending is None else self._pending.copy(),
            "asked": bool(self._asked),
            "rng": rng_to_state(self._rng),
        }
        state.update(self._extra_state())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a state written by :meth:`state_dict` of the same optimiser class.

        The saved hyper-parameters replace this instance's; ``latent_dim`` must match.

        Parameters
        ----------
        state : dict
            As returned by :meth:`state_dict` (possibly after a JSON/msgpack/npz round trip
            that turned arrays into lists).
        """
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict, got {type(state).__name__}")
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not an optimiser state: format is {state.get('format')!r}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"optimiser state version {state.get('version')!r}, this bci reads {STATE_VERSION}"
            )
        if state.get("optimizer") != self.name:
            raise ValueError(
                f"state is of a {state.get('optimizer')!r} optimiser, not {self.name!r}"
            )
        missing = [
            k
            for k in ("latent_dim", "population_size", "params", "generation", "pending", "rng")
            if k not in state
        ]
        if missing:
            raise ValueError(f"optimiser state is missing {', '.join(map(repr, missing))}")
        if int(state["latent_dim"]) != self._latent_dim:
            raise ValueError(
                f"state has latent_dim {state['latent_dim']}, this optimiser {self._latent_dim}"
            )
        self._population_size = _check_int(state["population_size"], "population_size", 1)
        self._set_params(dict(state["params"]))
        self._generation = _check_int(state["generation"], "generation", 0)
        if state.get("best_latent") is None:
            self._best_latent, self._best_fitness = None, -math.inf
        else:
            self._best_latent = as_latent_array(
                np.reshape(state["best_latent"], (1, -1)), self._latent_dim, "best_latent"
            )[0]
            self._best_fitness = float(state["best_fitness"])
        self._pending = (
            None
            if state["pending"] is None
            else as_latent_array(state["pending"], self._latent_dim, "pending")
        )
        self._asked = bool(state.get("asked", False)) and self._pending is not None
        self._rng = rng_from_state(state["rng"])
        self._load_extra_state(state)

    def _set_params(self, params: dict) -> None:  # noqa: B027 (optional hook)
        """Apply saved hyper-parameters (override when :meth:`_params` is not empty)."""
