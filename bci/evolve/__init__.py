"""Ask/tell optimisers over generator latents for neuron-driven image synthesis (XDream).

A population of latents is rendered, shown, the neural response to each image is its fitness,
and the next population is bred from the fittest (Xiao & Kreiman, PLoS Comput Biol 2020;
Ponce et al., Cell 2019)::

    opt = make_optimizer("genetic", gen.latent_dim, random_state=0)
    while running:
        z = opt.ask()                       # (n, latent_dim) float32
        fitness = measure(gen.render(z))    # (n,), NaN where no response came
        opt.tell(z, fitness)
    state = opt.state_dict()                # JSON-able values and numpy arrays
    opt = from_state_dict(state)            # continues exactly where it was
"""

from __future__ import annotations

from typing import Any

from bci.evolve.base import STATE_FORMAT, STATE_VERSION, Optimizer, check_random_state
from bci.evolve.cmaes import CMAESOptimizer
from bci.evolve.genetic import (
    PRESETS,
    GeneticOptimizer,
    crossover,
    mutate,
    roulette,
    select_parents,
    selection_probabilities,
    temperature,
)
from bci.evolve.random_search import RandomSearch

__all__ = [
    "OPTIMIZERS",
    "PRESETS",
    "STATE_FORMAT",
    "STATE_VERSION",
    "CMAESOptimizer",
    "GeneticOptimizer",
    "Optimizer",
    "RandomSearch",
    "check_random_state",
    "crossover",
    "from_state_dict",
    "make_optimizer",
    "mutate",
    "roulette",
    "select_parents",
    "selection_probabilities",
    "temperature",
]

#: Optimiser classes by the name :func:`make_optimizer` takes.
OPTIMIZERS: dict[str, type[Optimizer]] = {
    "cmaes": CMAESOptimizer,
    "genetic": GeneticOptimizer,
    "random": RandomSearch,
}


def _known() -> str:
    return ", ".join(repr(k) for k in OPTIMIZERS)


def make_optimizer(name: str, latent_dim: int, **params: Any) -> Optimizer:
    """Create an optimiser by name.

    Parameters
    ----------
    name : str
        ``"genetic"``, ``"cmaes"`` or ``"random"``.
    latent_dim : int
        Width of one latent.
    **params
        Constructor arguments of the class (e.g. ``population_size``, ``random_state``). For
        ``"genetic"``, ``preset="ponce"`` (or ``"xdream"``) starts from a named preset that the
        other arguments override.

    Returns
    -------
    Optimizer
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {_known()}")
    if "preset" in params:
        if name != "genetic":
            raise ValueError(f"preset= is only for the 'genetic' optimizer, not {name!r}")
        preset = params.pop("preset")
        return GeneticOptimizer.preset(preset, latent_dim, **params)
    return OPTIMIZERS[name](latent_dim, **params)


def from_state_dict(state: dict) -> Optimizer:
    """Re-create an optimiser from its :meth:`Optimizer.state_dict`.

    Parameters
    ----------
    state : dict
        A state dict of any optimiser here.

    Returns
    -------
    Optimizer
        A new optimiser of the saved class that continues exactly where the saved one was.
    """
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError("not an optimiser state (no format 'bci.evolve')")
    name = state.get("optimizer")
    if name not in OPTIMIZERS:
        raise ValueError(f"state names unknown optimizer {name!r}; known: {_known()}")
    opt = OPTIMIZERS[name](int(state["latent_dim"]), population_size=int(state["population_size"]))
    opt.load_state_dict(state)
    return opt
