"""The benchmark datasets as data: one row per MoleculeNet dataset.

Each :class:`DatasetInfo` says which file under the data directory holds the dataset, which
columns are SMILES and labels, how it is scored, its OGB name, and where a pinned copy is
published (address and sha256). :mod:`molft.data.registry` loads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, REGRESSION

_S3 = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/"
# Pinned copies (shared/data/SOURCES.md): the CSVs there are these bytes (gzipped, or as they are).
_GLAMBARD = "https://raw.githubusercontent.com/GLambard/Molecules_Dataset_Collection/beb35cd0b76db5adef6cb1fa55807e4cd309aaed/originals/"
_DEEPCHEM = "https://raw.githubusercontent.com/deepchem/deepchem/"
_CHEMPROP = "https://raw.githubusercontent.com/chemprop/chemprop/3f2b73372a8968f0f73b2fb279a5780cae918d58/"


@dataclass(frozen=True)
class DatasetInfo:
    """One benchmark dataset: where it lives, what to read, how to score it.

    Args:
        name: molft's name (``"BBBP"``); look-ups ignore case and also accept ``ogb_name`` and
            ``aliases``.
        file: the file, relative to the data directory.
        task_type: ``"classification"`` or ``"regression"``.
        metric: the metric Hu et al. 2020 / MoleculeNet report (a key of ``molft.evaluate.METRICS``).
        ogb_name: the OGB dataset with the same molecules, for ``ogb.graphproppred.Evaluator``.
        url: where DeepChem publishes the original MoleculeNet file.
        sha256: sha256 of the copy in molft's data directory (``shared/data/SOURCES.md``). It is
            *not* the hash of the file at ``url``: some originals are uncompressed there, and
            our BACE, MUV and ClinTox copies deviate slightly (see SOURCES.md). None if no copy.
        label_columns: the task columns. Empty means "every column of the header except the
            SMILES column and ``exclude_columns``" (Tox21, ToxCast, SIDER, MUV, PCBA).
        exclude_columns: non-label columns, used when ``label_columns`` is empty.
        smiles_columns: the SMILES column: the first of these the header has.
        canonical_split_smiles: compute scaffolds from RDKit-canonical SMILES, as pretrain-gnns
            does for BBBP, ClinTox and ToxCast (its loaders write ``MolToSmiles`` for these);
            for a handful of molecules the scaffold differs from that of the file's SMILES.
        aliases: other names accepted by look-ups.
        download_url: a pinned address (a fixed commit) :func:`dataset_path` fetches the file
            from when the data directory lacks it and ``download=True``.
        download_sha256: sha256 of the bytes at ``download_url`` (None: not known, PCBA).
    """

    name: str
    file: str
    task_type: str
    metric: str
    ogb_name: str | None
    url: str
    sha256: str | None
    label_columns: tuple[str, ...] = ()
    exclude_columns: tuple[str, ...] = ()
    smiles_columns: tuple[str, ...] = ("smiles",)
    canonical_split_smiles: bool = False
    aliases: tuple[str, ...] = ()
    download_url: str | None = None
    download_sha256: str | None = None

    def names(self) -> tuple[str, ...]:
        """Every lower-case name this dataset answers to."""
        return tuple(n.lower() for n in (self.name, self.ogb_name or "", *self.aliases) if n)


DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        "BBBP", "moleculenet/BBBP.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molbbbp", _S3 + "BBBP.csv",
        "d211b6aff488acfb47138edfcf23667af599858b3fe036045541f7137930e548",
        label_columns=("p_np",), canonical_split_smiles=True,
        download_url=_GLAMBARD + "BBBP.csv",
        download_sha256="d07a38487aeac5cee5508413e468043ef3097451d2a112701c2d60be9ec6b662",
    ),
    DatasetInfo(
        "Tox21", "moleculenet/tox21.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-moltox21", _S3 + "tox21.csv.gz",
        "b0712b58280c1c87660d6abc23e199389372979a9d85f850cb27cdec6aa7c2af",
        exclude_columns=("mol_id",),
        download_url=_GLAMBARD + "tox21.csv",
        download_sha256="7d7e7facd853a63e79ddce4e9c3fcb7a0d83a1c300b603031c0f2c64fbe77761",
    ),
    DatasetInfo(
        "ToxCast", "moleculenet/toxcast_data.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-moltoxcast",
        _S3 + "toxcast_data.csv.gz", "56041515e0bb63c1787a26ecdbeb2bd7ae1f538681caa1b03f768853cf81b1a7",
        canonical_split_smiles=True,
        download_url=_DEEPCHEM + "446b5b25edc0c3bd5f4bf97c864a9f29774762a1/examples/toxcast/processing/toxcast_data.csv.gz",
        download_sha256="56041515e0bb63c1787a26ecdbeb2bd7ae1f538681caa1b03f768853cf81b1a7",
    ),
    DatasetInfo(
        "SIDER", "moleculenet/sider.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molsider", _S3 + "sider.csv.gz",
        "3ffbbdea85ccc74a54e762ff03547c189bb087866fcf1cae9c8d08b394811509",
        download_url=_GLAMBARD + "sider.csv",
        download_sha256="71efc6ac4ca82d6545bc512509863281be0f17234afd7adaf71a71899988302e",
    ),
    DatasetInfo(
        "ClinTox", "moleculenet/clintox.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molclintox",
        _S3 + "clintox.csv.gz", "b8f03d8e402771e42370e1b17e97fe064199177ffb45092944dbaab3446f24d5",
        label_columns=("FDA_APPROVED", "CT_TOX"), canonical_split_smiles=True,
        download_url=_GLAMBARD + "clintox.csv",
        download_sha256="0bd655529cebe6d94addd48b8afdab6fa0438b4503a470866231793f235d7e61",
    ),
    DatasetInfo(
        "MUV", "moleculenet/muv.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molmuv", _S3 + "muv.csv.gz",
        "ee68d1fad0b10440dc494ac3a74cf99168a0b0da9683556b2b48220b88172135",
        exclude_columns=("mol_id",),
        download_url=_CHEMPROP + "data/muv.csv.gz",
        download_sha256="ee68d1fad0b10440dc494ac3a74cf99168a0b0da9683556b2b48220b88172135",
    ),
    DatasetInfo(
        "HIV", "moleculenet/HIV.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molhiv", _S3 + "HIV.csv",
        "8d4a211ed33d242d3303f28e9160acfa94d606675c9d30944fd12373bb810ebc",
        label_columns=("HIV_active",),
        download_url=_GLAMBARD + "HIV.csv",
        download_sha256="54713c3205055055ea4214e8c4b0d22d93af7e54ad2c48f4edc866e161e57262",
    ),
    DatasetInfo(
        "BACE", "moleculenet/bace.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molbace", _S3 + "bace.csv",
        "fb56d9386eaa076dc1474bc93040e53ccc59d740329d564779d2bc6fa5d7cd5f",
        label_columns=("Class",), smiles_columns=("smiles", "mol"),
        download_url=_GLAMBARD + "bace.csv",
        download_sha256="d36f089649984f7bfaa4589ccc3ae907b831780a01ccfd065a5b604939e1a5df",
    ),
    DatasetInfo(
        # Not in the data directory (SOURCES.md: too large for the snapshot store).
        "PCBA", "moleculenet/pcba.csv.gz", CLASSIFICATION, "pr_auc", "ogbg-molpcba", _S3 + "pcba.csv.gz",
        None, exclude_columns=("mol_id",),
        download_url=_S3 + "pcba.csv.gz",
        download_sha256=None,
    ),
    DatasetInfo(
        "ESOL", "moleculenet/delaney-processed.csv.gz", REGRESSION, "rmse", "ogbg-molesol",
        _S3 + "delaney-processed.csv", "5d3f47386ea1a6ff54a67e90d9f1106180a8d60be5f3bc259781726f56410b00",
        label_columns=("measured log solubility in mols per litre",), aliases=("delaney",),
        download_url=_DEEPCHEM + "fbe3b911a94a6eb8c84c1a9e7ac67a472c49ea80/datasets/delaney-processed.csv",
        download_sha256="8c06a76f0c6487d29ab0f903e6a7a7139f189ab3c1178f159c8be8964602f189",
    ),
    DatasetInfo(
        "FreeSolv", "moleculenet/SAMPL.csv.gz", REGRESSION, "rmse", "ogbg-molfreesolv", _S3 + "SAMPL.csv",
        "658dce87944365ad8fc03b8b137e561320deb64316bda57fe74a5069d0859b13",
        label_columns=("expt",), aliases=("sampl",),
        download_url=_GLAMBARD + "FreeSolv_SAMPL.csv",
        download_sha256="ab5895d914ee87cb563bd7b9611e869527bba45bec6b014d34dc495a0f9dcb72",
    ),
    DatasetInfo(
        "Lipophilicity", "moleculenet/Lipophilicity.csv.gz", REGRESSION, "rmse", "ogbg-mollipo",
        _S3 + "Lipophilicity.csv", "b63bb8a9fbb8c68bc62949e63d841a59c2e78571a3f0087c47b83f484ee45468",
        label_columns=("exp",), aliases=("lipo",),
        download_url=_GLAMBARD + "Lipophilicity.csv",
        download_sha256="aed41590cb30609d51d8e08ad3ff06495a76e80e211358801f596b10da69bacd",
    ),
)


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry row for ``name`` (``"bbbp"``, ``"BBBP"`` and ``"ogbg-molbbbp"`` all work).

    Raises:
        InputError: listing the known names.
    """
    for info in DATASETS:
        if name.strip().lower() in info.names():
            return info
    raise InputError(f"unknown dataset {name!r}; choose one of: {', '.join(i.name for i in DATASETS)}")
