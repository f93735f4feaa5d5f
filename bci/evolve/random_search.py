"""Random search, the baseline optimiser: fresh draws from the generator's prior each generation."""

from __future__ import annotations

from bci.evolve.base import Optimizer, SeedLike

__all__ = ["RandomSearch"]


class RandomSearch(Optimizer):
    """Every generation is ``population_size`` fresh ``N(0, I)`` latents; only the best is kept.

    What is told never changes what is asked (beyond an all-``NaN`` generation, which is asked
    again), so this is the baseline any optimiser must beat.

    Parameters
    ----------
    latent_dim : int
        Width of one latent.
    population_size : int
        Latents per generation. Default 20, the genetic optimiser's default, so that both
        report generations of the same size; the total evaluation budget is what matters for a
        comparison, and random search does not depend on how it is split.
    random_state : int, numpy Generator or None
        Seed.
    """

    name = "random"

    def __init__(
        self, latent_dim: int, population_size: int = 20, random_state: SeedLike = None
    ) -> None:
        super().__init__(latent_dim, population_size, random_state)

    @property
    def params(self) -> dict:
        """The hyper-parameters (a copy)."""
        return {"population_size": self._population_size}

    def _propose(self):
        return self._rng.standard_normal((self._population_size, self._latent_dim))

    def _update(self, latents, fitness) -> None:
        self._pending = None
