"""grappa_like: a learned molecular-mechanics force field written as ordinary OpenMM Systems."""

from grappa_like.api import Model, Result, load_model, parameterize, to_openmm
from grappa_like.library import parameterize_library
from grappa_like.molecule import Molecule
from grappa_like.ood import ood_score

__all__ = ["Model", "Molecule", "Result", "load_model", "ood_score", "parameterize", "parameterize_library", "to_openmm"]
__version__ = "0.1.0"
