"""Errors molft raises. Each also inherits the matching builtin, so callers can catch either."""

from __future__ import annotations


class MolftError(Exception):
    """Base class: an error the user can act on. The CLI prints its message, never a traceback."""


class InputError(MolftError, ValueError):
    """A file, column, value or option the user gave cannot be used as it is."""


class InvalidSmilesError(InputError):
    """A SMILES string that cannot become a molecular graph.

    Attributes:
        smiles: the string as given.
        reason: why it failed, in words (RDKit's own message where it has one).
    """

    def __init__(self, smiles: str, reason: str) -> None:
        super().__init__(f"{smiles!r}: {reason}")
        self.smiles = smiles
        self.reason = reason


class UnsafeFileError(InputError):
    """A file that could only be read by running code from it (a pickle), refused."""
