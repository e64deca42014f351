"""Feature vocabularies as data: the allowed values of each atom and bond property.

A :class:`Vocabulary` is a named pair of atom and bond feature tables. Embedding sizes, the
mask token's index and decoding are all derived from these tables, so no vocabulary size is
ever typed twice. The vocabulary's name goes into every checkpoint's ``config.json``.

Two vocabularies ship:

* ``ogb``: the 9 atom / 3 bond features of ``ogb.utils.features`` (OGB, Hu et al. 2020's
  OGB follow-up); molft's output is identical to ``ogb.utils.smiles2graph``.
* ``hu2020``: the 2 atom / 2 bond features of Hu et al., ICLR 2020 ("Strategies for
  Pre-training Graph Neural Networks", ``snap-stanford/pretrain-gnns`` ``chem/loader.py``),
  with their mask and self-loop tokens at the same indices, so checkpoints of that family map
  onto molft's encoder.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from molft.errors import InputError

MASK = "mask"
SELF_LOOP = "self_loop"
OTHER = "other"


@dataclass(frozen=True)
class Feature:
    """One categorical property of an atom or a bond.

    Args:
        name: the RDKit property it reads (see ``molft.featurize.graph.PROPERTY_READERS``).
        values: the allowed values, in index order. Enum properties name RDKit's enum members
            (``"SP3"``); a value that is not a member (OGB's ``"misc"``) is a bucket only.
        unknown: the value or special token that every value not in ``values`` maps to.
        specials: extra tokens after the values (``"mask"``, ``"self_loop"``, ``"other"``);
            they never come from a molecule, except ``unknown`` when it is one of them.
    """

    name: str
    values: tuple[Hashable, ...]
    unknown: Hashable
    specials: tuple[str, ...] = ()
    _index: Mapping[Hashable, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = self.values + self.specials
        index = {token: position for position, token in enumerate(tokens)}
        if len(index) != len(tokens):
            raise ValueError(f"feature {self.name!r}: duplicate values in {tokens}")
        if self.unknown not in index:
            raise ValueError(f"feature {self.name!r}: unknown={self.unknown!r} is not among {tokens}")
        object.__setattr__(self, "_index", index)

    @property
    def dim(self) -> int:
        """Number of embedding rows this feature needs."""
        return len(self.values) + len(self.specials)

    @property
    def unknown_index(self) -> int:
        """Index of the bucket for values outside the vocabulary."""
        return self._index[self.unknown]

    def index(self, token: Hashable) -> int:
        """Index of a value or special token; values outside the vocabulary get ``unknown_index``."""
        return self._index.get(token, self.unknown_index)

    def decode(self, index: int) -> Hashable:
        """The value or token at ``index``."""
        return (self.values + self.specials)[index]


@dataclass(frozen=True)
class Vocabulary:
    """Atom and bond feature tables under one name."""

    name: str
    atom: tuple[Feature, ...]
    bond: tuple[Feature, ...]

    @property
    def atom_dims(self) -> list[int]:
        """Embedding rows per atom feature, in column order of ``x``."""
        return [feature.dim for feature in self.atom]

    @property
    def bond_dims(self) -> list[int]:
        """Embedding rows per bond feature, in column order of ``edge_attr``."""
        return [feature.dim for feature in self.bond]

    def atom_feature(self, name: str) -> Feature:
        """The atom feature called ``name``."""
        return _by_name(self.atom, name, self.name)

    def bond_feature(self, name: str) -> Feature:
        """The bond feature called ``name``."""
        return _by_name(self.bond, name, self.name)

    def decode_atom(self, row: list[int]) -> dict[str, Hashable]:
        """Turn one row of ``x`` back into named values, for reading and debugging."""
        return {feature.name: feature.decode(int(i)) for feature, i in zip(self.atom, row)}

    def decode_bond(self, row: list[int]) -> dict[str, Hashable]:
        """Turn one row of ``edge_attr`` back into named values."""
        return {feature.name: feature.decode(int(i)) for feature, i in zip(self.bond, row)}


def _by_name(features: tuple[Feature, ...], name: str, vocabulary: str) -> Feature:
    for feature in features:
        if feature.name == name:
            return feature
    raise KeyError(f"vocabulary {vocabulary!r} has no feature {name!r}")


MISC = "misc"
_OGB_CHIRALITY = ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER")

OGB = Vocabulary(
    name="ogb",
    atom=(
        Feature("atomic_num", (*range(1, 119), MISC), unknown=MISC),
        Feature("chirality", (*_OGB_CHIRALITY, MISC), unknown=MISC),
        Feature("total_degree", (*range(11), MISC), unknown=MISC),
        Feature("formal_charge", (*range(-5, 6), MISC), unknown=MISC),
        Feature("total_num_hs", (*range(9), MISC), unknown=MISC),
        Feature("num_radical_electrons", (*range(5), MISC), unknown=MISC),
        Feature("hybridization", ("SP", "SP2", "SP3", "SP3D", "SP3D2", MISC), unknown=MISC),
        Feature("is_aromatic", (False, True), unknown=False),
        Feature("is_in_ring", (False, True), unknown=False),
    ),
    bond=(
        Feature("bond_type", ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC", MISC), unknown=MISC),
        # OGB's list has no bucket: its safe_index sends unseen values to the last entry.
        Feature(
            "bond_stereo",
            ("STEREONONE", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS", "STEREOANY"),
            unknown="STEREOANY",
        ),
        Feature("is_conjugated", (False, True), unknown=False),
    ),
)

HU2020 = Vocabulary(
    name="hu2020",
    atom=(
        # Indices 0..117 are atomic numbers 1..118, 118 is "other", 119 the mask token, as in
        # pretrain-gnns (num_atom_type=120, MaskAtom(num_atom_type=119)).
        Feature("atomic_num", (*range(1, 119),), unknown=OTHER, specials=(OTHER, MASK)),
        Feature("chirality", _OGB_CHIRALITY, unknown="CHI_OTHER"),
    ),
    bond=(
        # 0..3 bond types, 4 self-loop, 5 mask, as in pretrain-gnns (num_bond_type=6); 6 other.
        Feature(
            "bond_type",
            ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC"),
            unknown=OTHER,
            specials=(SELF_LOOP, MASK, OTHER),
        ),
        Feature("bond_dir", ("NONE", "ENDUPRIGHT", "ENDDOWNRIGHT"), unknown=OTHER, specials=(OTHER,)),
    ),
)

VOCABULARIES: dict[str, Vocabulary] = {vocab.name: vocab for vocab in (OGB, HU2020)}


def get_vocabulary(name: str | Vocabulary) -> Vocabulary:
    """Look a vocabulary up by name (``"ogb"``, ``"hu2020"``); a Vocabulary passes through."""
    if isinstance(name, Vocabulary):
        return name
    try:
        return VOCABULARIES[name]
    except KeyError:
        raise InputError(
            f"unknown vocabulary {name!r}; choose one of: {', '.join(VOCABULARIES)}"
        ) from None
