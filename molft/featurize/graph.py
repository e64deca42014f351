"""SMILES -> molecular graphs, fast, with every failure kept and explained.

The core is :func:`featurize_many`: it parses a chunk of SMILES with RDKit, reads each atom and
bond property once per molecule with C-level ``map`` calls, and turns raw values into vocabulary
indices with one vectorized table look-up per chunk. Graphs come back in a compact columnar
form (:class:`~molft.featurize.arrays.GraphArrays`) that indexes to ``torch_geometric.data.Data``.

Featurizing is RDKit + NumPy only: torch and PyG are imported the first time a graph is turned
into a ``Data`` object (indexing a :class:`GraphArrays`, :func:`smiles_to_graph`), so that
``molft featurize`` never pays their start-up time.

Shortcuts keep it fast, and each follows from SMILES syntax alone (the identity test against
``ogb.utils.smiles2graph`` checks them): a SMILES without ``@`` has no chiral tags; one without
``/`` or ``\\`` has no bond stereo or bond direction; one without ``[`` or ``|`` has no radicals
(RDKit assigns them only to bracket atoms, or CXSMILES sets them); one without a digit has no
ring, so no ring or aromatic atom; and one without ``<``, ``>``, ``|`` or a metal in brackets
has no dative bond (RDKit makes bonds to metals dative), so the bond order (a float, cheap to
read) names the bond type (an enum, slow to wrap). Formal charge has no such shortcut:
sanitization charges ``N(=O)=O`` without any bracket. Parsing leaves out RDKit's stereo
perception where the SMILES has nothing for it to find (see :func:`_parse`). Total degree is
derived from the bond list and the hydrogen count instead of being read per atom.
"""

from __future__ import annotations

import multiprocessing
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from rdkit import Chem, rdBase

from molft.errors import InvalidSmilesError
from molft.featurize.arrays import GraphArrays, offsets
from molft.featurize.vocab import OGB, Feature, Vocabulary, get_vocabulary

if TYPE_CHECKING:
    from torch_geometric.data import Data


@dataclass(frozen=True)
class PropertyReader:
    """How to read one raw property from RDKit.

    Args:
        owner: ``"atom"`` or ``"bond"``.
        getter: unbound RDKit method, e.g. ``Chem.Atom.GetAtomicNum``.
        enum: the RDKit enum whose member names the vocabulary uses, if any.
        needs_any_of: SMILES characters without which the property is always 0 (its default).
        cheap_getter: a faster RDKit method whose value names the raw code through
            ``cheap_codes`` (unknown values give -1), used where ``cheap_when(smiles)``; the two
            come together.
    """

    owner: str
    getter: Callable[[Any], Any] | None
    enum: Any = None
    needs_any_of: str = ""
    cheap_getter: Callable[[Any], Any] | None = None
    cheap_codes: Mapping[Any, int] = field(default_factory=dict)
    cheap_when: Callable[[str], bool] | None = None

    def code(self, value: Any) -> int | None:
        """The raw integer RDKit gives for a vocabulary value; None for a bucket like 'misc'."""
        if self.enum is not None:
            member = self.enum.names.get(value) if isinstance(value, str) else None
            return None if member is None else int(member)
        if isinstance(value, (bool, int)):
            return int(value)
        return None


class _CodeOrMinusOne(dict):
    """A dict whose missing keys give -1, an index no vocabulary uses (its "unknown" bucket)."""

    def __missing__(self, key: Any) -> int:
        return -1


# Bond order -> BondType code. Without a dative bond the SMILES parser makes no other bond type of
# order 1.0 or 1.5 (ONEANDAHALF and kin never come from SMILES).
_BOND_TYPE_BY_ORDER = _CodeOrMinusOne(
    {1.0: int(Chem.BondType.SINGLE), 1.5: int(Chem.BondType.AROMATIC),
     2.0: int(Chem.BondType.DOUBLE), 3.0: int(Chem.BondType.TRIPLE)}
)
_DIGITS = "0123456789"
# Elements written in brackets that are no metal, so RDKit never makes a dative bond to them.
_NON_METALS = frozenset(
    "H He B C N O F Ne Si P S Cl Ar Se Br Kr I Xe b c n o p s se *".split()
)
_BRACKET_ELEMENT = re.compile(r"\[\d*([A-Z][a-z]?|se|as|te|[bcnops*])")


def has_no_dative_bond(smiles: str) -> bool:
    """True where the SMILES cannot give a dative bond: no '->', '<-', CXSMILES or bracketed metal."""
    if "<" in smiles or ">" in smiles or "|" in smiles:
        return False
    return "[" not in smiles or _NON_METALS.issuperset(_BRACKET_ELEMENT.findall(smiles))


PROPERTY_READERS: dict[str, PropertyReader] = {
    "atomic_num": PropertyReader("atom", Chem.Atom.GetAtomicNum),
    "chirality": PropertyReader("atom", Chem.Atom.GetChiralTag, Chem.ChiralType, needs_any_of="@"),
    "formal_charge": PropertyReader("atom", Chem.Atom.GetFormalCharge),
    "total_num_hs": PropertyReader("atom", Chem.Atom.GetTotalNumHs),
    "num_radical_electrons": PropertyReader("atom", Chem.Atom.GetNumRadicalElectrons, needs_any_of="[|"),
    "hybridization": PropertyReader("atom", Chem.Atom.GetHybridization, Chem.HybridizationType),
    "is_aromatic": PropertyReader("atom", Chem.Atom.GetIsAromatic, needs_any_of=_DIGITS),
    "is_in_ring": PropertyReader("atom", Chem.Atom.IsInRing, needs_any_of=_DIGITS),
    # Atom.GetTotalDegree() == explicit neighbours + total hydrogens: derived per chunk.
    "total_degree": PropertyReader("atom", None),
    "bond_type": PropertyReader(
        "bond",
        Chem.Bond.GetBondType,
        Chem.BondType,
        cheap_getter=Chem.Bond.GetBondTypeAsDouble,
        cheap_codes=_BOND_TYPE_BY_ORDER,
        cheap_when=has_no_dative_bond,
    ),
    "bond_stereo": PropertyReader("bond", Chem.Bond.GetStereo, Chem.BondStereo, needs_any_of="/\\"),
    "bond_dir": PropertyReader("bond", Chem.Bond.GetBondDir, Chem.BondDir, needs_any_of="/\\"),
    "is_conjugated": PropertyReader("bond", Chem.Bond.GetIsConjugated),
}


class _LookupTable:
    """Vectorized raw-value -> vocabulary-index map for one feature."""

    def __init__(self, feature: Feature) -> None:
        reader = PROPERTY_READERS[feature.name]
        codes = {reader.code(v): i for i, v in enumerate(feature.values)}
        codes.pop(None, None)
        self.unknown = feature.unknown_index
        self.low = min(codes)
        self.table = np.full(max(codes) - self.low + 1, self.unknown, dtype=np.int64)
        for code, index in codes.items():
            self.table[code - self.low] = index

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        offset = raw - self.low
        inside = (offset >= 0) & (offset < len(self.table))
        return np.where(inside, self.table[np.clip(offset, 0, len(self.table) - 1)], self.unknown)


@dataclass(frozen=True)
class Failure:
    """A SMILES that could not be featurized: its position in the input, the text and why."""

    index: int
    smiles: str
    reason: str


@dataclass
class FeaturizeResult:
    """What :func:`featurize_many` returns.

    Attributes:
        graphs: the featurized molecules, in input order.
        indices: [len(graphs)] input position of each graph.
        failures: every input that failed, with its position and reason.
    """

    graphs: GraphArrays
    indices: np.ndarray
    failures: list[Failure]


def describe_failure(smiles: str) -> str:
    """Say in words why RDKit cannot turn ``smiles`` into a molecule with atoms.

    Returns ``""`` if it can.
    """
    if not isinstance(smiles, str):
        return f"not a SMILES string ({type(smiles).__name__} {smiles!r})"
    text = smiles.strip()
    if not text:
        return "empty SMILES"
    if space := _INNER_SPACE.search(text):
        return (
            f"whitespace inside the SMILES at position {space.start()}: RDKit would read only "
            f"{text[:space.start()]!r} and ignore the rest"
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            return f"not valid text ({error.reason} at position {error.start})"
    with rdBase.CaptureErrorLog() as parse_log:
        unsanitized = Chem.MolFromSmiles(text, sanitize=False)
    if unsanitized is None:
        return f"unparsable SMILES: {_first_message(parse_log.messages) or 'RDKit could not parse it'}"
    with rdBase.CaptureErrorLog() as sanitize_log:
        problems = Chem.DetectChemistryProblems(unsanitized)
        mol = Chem.MolFromSmiles(text)
    if problems:
        return f"sanitization failed ({problems[0].GetType()}): {problems[0].Message()}"
    if mol is None:
        return f"sanitization failed: {_first_message(sanitize_log.messages) or 'RDKit rejected it'}"
    if mol.GetNumAtoms() == 0:
        return "no atoms"
    return ""


_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")
# RDKit reads a SMILES up to the first whitespace and takes the rest as a name ('C\tC(=O)O' would
# become methane): whitespace inside is refused, except before a CXSMILES extension block '|...|'.
_INNER_SPACE = re.compile(r"\s(?!\s*\|)")


def _parse(smiles: Any) -> Chem.Mol | None:
    """RDKit's molecule for one SMILES, or None where :func:`describe_failure` has the reason.

    The same molecule as ``Chem.MolFromSmiles``, which after sanitizing and removing hydrogens
    runs stereo perception; without ``@``, ``/``, ``\\`` or CXSMILES there is nothing for it to
    find and it would change no feature, so that step is left out there. Without a hydrogen atom
    (``[H]``, ``[2H]``, ``[#1]``...; ``[nH]`` is a hydrogen count, not an atom) there is nothing to
    remove either, and the molecule is sanitized in place instead of copied by ``RemoveHs``.
    """
    if not isinstance(smiles, str):
        return None
    text = smiles.strip()
    if not text or _INNER_SPACE.search(text):
        return None
    try:
        if any(c in text for c in _STEREO_OR_CXSMILES):
            return Chem.MolFromSmiles(text)
        mol = Chem.MolFromSmiles(text, sanitize=False)
        if mol is None:
            return None
        # what MolFromSmiles does before stereo perception: sanitize while removing hydrogens
        if _HYDROGEN_ATOM.search(text):
            return Chem.RemoveHs(mol, implicitOnly=False, updateExplicitCount=True, sanitize=True)
        Chem.SanitizeMol(mol)
        return mol
    except UnicodeEncodeError:  # a lone surrogate, e.g. from errors="surrogateescape"
        return None
    except (Chem.MolSanitizeException, RuntimeError):  # MolFromSmiles would give None
        return None


_STEREO_OR_CXSMILES = "@/\\|"
# A bracket atom that may be hydrogen: '[H]', '[2H+]', '[#1]' (also '[Hg]', '[#16]': harmless).
_HYDROGEN_ATOM = re.compile(r"\[\d*[H#]")


def _first_message(messages: Any) -> str:
    lines = [_TIMESTAMP.sub("", line).strip() for line in str(messages).splitlines()]
    return next((line for line in lines if line), "")


class _ChunkFeaturizer:
    """Featurizes one chunk of SMILES with a fixed vocabulary; picklable for worker processes."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.vocab = vocab
        self.atom_names = [f.name for f in vocab.atom]
        self.bond_names = [f.name for f in vocab.bond]
        read_atoms = set(self.atom_names)
        if "total_degree" in read_atoms:
            read_atoms = (read_atoms - {"total_degree"}) | {"total_num_hs"}
        self.atom_reads = sorted(read_atoms)
        self.bond_reads = sorted(set(self.bond_names))
        self.atom_tables = [_LookupTable(f) for f in vocab.atom]
        self.bond_tables = [_LookupTable(f) for f in vocab.bond]
        widest = max(vocab.atom_dims + vocab.bond_dims)
        self.dtype = np.uint8 if widest <= 256 else np.int16

    def __call__(self, smiles_chunk: Sequence[str]) -> tuple[GraphArrays, list[int], list[tuple[int, str]]]:
        atom_raw: dict[str, list[Any]] = {name: [] for name in self.atom_reads}
        bond_raw: dict[str, list[Any]] = {name: [] for name in self.bond_reads}
        atom_readers = [(atom_raw[name], PROPERTY_READERS[name]) for name in self.atom_reads]
        bond_readers = [(bond_raw[name], PROPERTY_READERS[name]) for name in self.bond_reads]
        begin: list[int] = []
        end: list[int] = []
        atom_counts: list[int] = []
        bond_counts: list[int] = []
        kept: list[int] = []
        failed: list[tuple[int, str]] = []
        with rdBase.BlockLogs():
            for position, smiles in enumerate(smiles_chunk):
                mol = _parse(smiles)
                if mol is None or mol.GetNumAtoms() == 0:
                    failed.append((position, smiles))
                    continue
                # map over *WithIdx: RDKit's GetAtoms()/GetBonds() iterate in Python, 3x slower.
                atoms = tuple(map(mol.GetAtomWithIdx, range(mol.GetNumAtoms())))
                bonds = tuple(map(mol.GetBondWithIdx, range(mol.GetNumBonds())))
                characters = set(smiles)
                for values, reader in atom_readers:
                    _read(values, reader, atoms, smiles, characters)
                for values, reader in bond_readers:
                    _read(values, reader, bonds, smiles, characters)
                begin.extend(map(Chem.Bond.GetBeginAtomIdx, bonds))
                end.extend(map(Chem.Bond.GetEndAtomIdx, bonds))
                atom_counts.append(len(atoms))
                bond_counts.append(len(bonds))
                kept.append(position)
        failures = [(position, describe_failure(smiles) or "no atoms") for position, smiles in failed]
        return self._assemble(atom_raw, bond_raw, begin, end, atom_counts, bond_counts), kept, failures

    def _assemble(self, atom_raw, bond_raw, begin, end, atom_counts, bond_counts) -> GraphArrays:
        atom_ptr, bond_ptr = offsets(np.asarray(atom_counts, np.int64)), offsets(np.asarray(bond_counts, np.int64))
        bonds = np.stack([np.asarray(begin, np.int32), np.asarray(end, np.int32)], axis=1).reshape(-1, 2)
        raw = {name: np.asarray(values, dtype=np.int64) for name, values in atom_raw.items()}
        if "total_degree" in self.atom_names:
            graph_of_bond = np.repeat(np.arange(len(bond_counts)), bond_counts)
            global_ends = bonds.astype(np.int64) + atom_ptr[graph_of_bond][:, None]
            neighbours = np.bincount(global_ends.ravel(), minlength=atom_ptr[-1])
            raw["total_degree"] = neighbours + raw["total_num_hs"]
        x = _encode([raw[name] for name in self.atom_names], self.atom_tables, atom_ptr[-1], self.dtype)
        bond_columns = [np.asarray(bond_raw[name], dtype=np.int64) for name in self.bond_names]
        bond_attr = _encode(bond_columns, self.bond_tables, bond_ptr[-1], self.dtype)
        return GraphArrays(x=x, bonds=bonds, bond_attr=bond_attr, atom_ptr=atom_ptr, bond_ptr=bond_ptr)


def _read(values: list[Any], reader: PropertyReader, items: tuple, smiles: str, characters: set[str]) -> None:
    """Append ``reader``'s raw value for each atom or bond in ``items`` of one molecule."""
    if reader.getter is None:
        return
    if reader.needs_any_of and characters.isdisjoint(reader.needs_any_of):
        values.extend([0] * len(items))
    elif reader.cheap_when is not None and reader.cheap_when(smiles):
        values.extend(map(reader.cheap_codes.__getitem__, map(reader.cheap_getter, items)))
    else:
        values.extend(map(reader.getter, items))


def _encode(columns: list[np.ndarray], tables: list[_LookupTable], rows: int, dtype: type) -> np.ndarray:
    out = np.empty((rows, len(tables)), dtype=dtype)
    for j, (column, table) in enumerate(zip(columns, tables)):
        out[:, j] = table(column)
    return out


class Featurizer:
    """Featurize batches of SMILES with one vocabulary, optionally over a pool of processes.

    Use as a context manager so that one pool serves a whole streamed file; each call takes a
    bounded list of SMILES, so memory stays bounded however long the file is.

    Args:
        vocab: vocabulary name or object.
        workers: processes to use; output order and content never depend on it.
        chunk_size: molecules per task sent to a worker.

    Example:
        >>> with Featurizer("ogb", workers=2) as featurize:
        ...     part = featurize(["CCO", "C1CC"], start=0)
    """

    def __init__(self, vocab: str | Vocabulary = OGB, workers: int = 1, chunk_size: int = 2048) -> None:
        self._chunk = _ChunkFeaturizer(get_vocabulary(vocab))
        self.workers = max(1, int(workers))
        self.chunk_size = chunk_size
        self._pool: Any = None

    def __enter__(self) -> Featurizer:
        if self.workers > 1:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._pool = context.Pool(self.workers, initializer=_init_worker, initargs=(self._chunk,))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def __call__(self, smiles: Sequence[str], start: int = 0, on_chunk: Callable[[int], None] | None = None) -> FeaturizeResult:
        """Featurize ``smiles``; indices in the result count from ``start``.

        Args:
            smiles: the SMILES of this batch.
            start: input position of ``smiles[0]`` in the whole stream.
            on_chunk: called with the number of molecules after each chunk (progress bars).
        """
        return self._collect(start, self._submit(smiles), on_chunk)

    def stream(
        self, batches: Iterable[Sequence[str]], on_chunk: Callable[[int], None] | None = None
    ) -> Iterator[FeaturizeResult]:
        """Featurize batch after batch, the next one already in the workers while the caller
        handles this one (e.g. writes it to disk); at most two batches are held at a time.

        Indices in each result count from the first SMILES of the first batch.
        """
        pending: deque[tuple[int, tuple[list[list[str]], Iterable]]] = deque()  # (start, submitted)
        start = 0
        for smiles in batches:
            pending.append((start, self._submit(smiles)))
            start += len(smiles)
            if len(pending) == 2:
                yield self._collect(*pending.popleft(), on_chunk)
        while pending:
            yield self._collect(*pending.popleft(), on_chunk)

    def _submit(self, smiles: Sequence[str]) -> tuple[list[list[str]], Iterable]:
        """Split into chunks and hand them to the pool (lazily computed without one)."""
        chunks = [list(smiles[i : i + self.chunk_size]) for i in range(0, len(smiles), self.chunk_size)]
        if self._pool is not None:
            return chunks, self._pool.imap(_featurize_in_worker, chunks)
        return chunks, map(self._chunk, chunks)

    def _collect(
        self, start: int, submitted: tuple[list[list[str]], Iterable], on_chunk: Callable[[int], None] | None
    ) -> FeaturizeResult:
        chunks, outputs = submitted
        parts, indices, failures = [], [], []
        offset = start
        for chunk, (graphs, kept, failed) in zip(chunks, outputs):
            parts.append(graphs)
            indices.append(np.asarray(kept, dtype=np.int64) + offset)
            failures.extend(Failure(offset + i, chunk[i], reason) for i, reason in failed)
            offset += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
        if not parts:
            parts, indices = [self._chunk([])[0]], [np.zeros(0, dtype=np.int64)]
        return FeaturizeResult(GraphArrays.concat(parts), np.concatenate(indices), failures)


_WORKER_FEATURIZER: _ChunkFeaturizer | None = None


def _init_worker(featurizer: _ChunkFeaturizer) -> None:
    global _WORKER_FEATURIZER
    _WORKER_FEATURIZER = featurizer


def _featurize_in_worker(chunk: list[str]) -> tuple[GraphArrays, list[int], list[tuple[int, str]]]:
    assert _WORKER_FEATURIZER is not None
    return _WORKER_FEATURIZER(chunk)


def featurize_many(
    smiles: Iterable[str],
    vocab: str | Vocabulary = OGB,
    *,
    workers: int = 1,
    progress: bool = False,
    chunk_size: int = 2048,
) -> FeaturizeResult:
    """Featurize many SMILES; every input is either a graph or a failure with its reason.

    Args:
        smiles: SMILES strings.
        vocab: vocabulary name (``"ogb"``, ``"hu2020"``) or object.
        workers: processes to use; the result is the same for any number.
        progress: show a progress bar (on stderr, only on a terminal).
        chunk_size: molecules per chunk.

    Returns:
        graphs in input order, the input position of each, and the failures.

    Example:
        >>> result = featurize_many(["CCO", "c1ccccc1", "C1CC"])
        >>> result.graphs[1].num_nodes, [f.index for f in result.failures]
        (6, [2])
    """
    from tqdm.auto import tqdm

    smiles = list(smiles)
    with tqdm(total=len(smiles), unit="mol", disable=None if progress else True, desc="featurize") as bar:
        with Featurizer(vocab, workers=workers, chunk_size=chunk_size) as featurize:
            return featurize(smiles, on_chunk=bar.update)


def smiles_to_graph(smiles: str, vocab: str | Vocabulary = OGB) -> Data:
    """Turn one SMILES into a ``Data`` graph (x, edge_index, edge_attr, all int64).

    Raises:
        InvalidSmilesError: with the reason, if RDKit cannot make a molecule with atoms of it.
    """
    result = featurize_many([smiles], vocab)
    if result.failures:
        raise InvalidSmilesError(smiles, result.failures[0].reason)
    return result.graphs[0]
