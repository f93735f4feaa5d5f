"""Generators that turn latents into images: PGGAN (HYPER), DCGAN, and the shipped default."""

from bci.generators.handle import Generator, to_uint8
from bci.generators.loader import load

__all__ = ["Generator", "load", "to_uint8"]
