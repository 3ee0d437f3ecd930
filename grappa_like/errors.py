"""Exceptions raised by grappa_like.

One base class, :class:`GrappaLikeError`, and a typed subclass for each failure a user can
meet. Input errors also derive from :class:`ValueError` so callers may catch either. Every
message names the record (molecule) and the reason.
"""


class GrappaLikeError(Exception):
    """Base class of every error raised on purpose by grappa_like."""


class MoleculeInputError(GrappaLikeError, ValueError):
    """A molecule could not be read or is not acceptable as input."""


class UnparsableInputError(MoleculeInputError):
    """A SMILES string or a file could not be parsed."""


class UnsupportedElementError(MoleculeInputError):
    """The molecule contains an element the model was not trained on."""


class RadicalError(MoleculeInputError):
    """The molecule has unpaired electrons (radical / open shell)."""


class MissingHydrogensError(MoleculeInputError):
    """Hydrogens are missing and cannot be added unambiguously."""


class TemplateMismatchError(MoleculeInputError):
    """A topology (PDB, OpenMM Topology) does not match the given SMILES / template."""


class EmptyMoleculeError(MoleculeInputError):
    """The molecule has no atoms."""


class MoleculeTooLargeError(MoleculeInputError):
    """The molecule has more atoms than the configured limit."""


class ModelFileError(GrappaLikeError):
    """A model file is missing, corrupt, or of an unsupported format version."""


class MissingDependencyError(GrappaLikeError, ImportError):
    """An optional dependency is needed for this feature; the message names the extra."""


class DataFileError(GrappaLikeError, ValueError):
    """A QM data file does not follow the grappa_like-qm-v1 layout."""


class TrainingSetupError(GrappaLikeError, ValueError):
    """A training run cannot start as asked (no GPU for --device cuda, a model to fine-tune from that does not fit)."""


class DisconnectedMoleculeError(MoleculeInputError):
    """The record holds several disconnected fragments (e.g. a salt); give one molecule."""


class ChargeMismatchError(MoleculeInputError):
    """The formal charges of the molecule do not add up to the total charge the user gave."""


class ParameterizationError(GrappaLikeError):
    """The network or the writer failed on a molecule that passed input validation (please report it)."""


class OutputPathError(GrappaLikeError, OSError):
    """An output file or folder cannot be created or written where the user asked."""


class ResidueMismatchWarning(UserWarning):
    """The OpenMM template generator saw a residue that no registered molecule matches (says why)."""
