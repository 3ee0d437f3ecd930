"""grappa_like: a learned molecular-mechanics force field written as ordinary OpenMM Systems.

The public names below are imported on first use (PEP 562), so ``import grappa_like`` costs
nothing until a function is called.
"""

__version__ = "0.2.0"

_PUBLIC = {
    "Model": "grappa_like.api",
    "Result": "grappa_like.api",
    "load_model": "grappa_like.api",
    "parameterize": "grappa_like.api",
    "to_openmm": "grappa_like.api",
    "ood_score": "grappa_like.api",
    "parameterize_library": "grappa_like.library",
    "Molecule": "grappa_like.molecule",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    import importlib

    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    if importlib.util.find_spec(f"grappa_like.{name}") is not None:  # a submodule, e.g. grappa_like.molecule
        return importlib.import_module(f"grappa_like.{name}")
    raise AttributeError(f"module 'grappa_like' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
