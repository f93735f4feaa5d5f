"""Functional alignment of several subjects into a common space: Procrustes, hyperalignment, SRM."""

from bci.align.hyperalignment import Hyperalignment
from bci.align.persistence import load_aligner, save_aligner
from bci.align.procrustes import Procrustes
from bci.align.srm import SRM

__all__ = ["SRM", "Hyperalignment", "Procrustes", "load_aligner", "save_aligner"]
