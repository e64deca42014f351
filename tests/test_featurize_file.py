"""Featurizing files: formats, SMILES column detection, rejects, safe round trip, clear errors."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pandas as pd
import pytest

from molft.data.featurized import featurize_file, load_featurized
from molft.data.tables import ROW_NUMBER, detect_smiles_column, read_table
from molft.errors import InputError

MESSY_CSV = (
    "id,SMILES,pIC50\n"
    "a,CCO,5.1\n"
    'b,"C,C",\n'
    "c,,6.0\n"
    "d,C1CC,7\n"
    "e,CN(C)(C)(C)C,4\n"
    "f,c1ccccc1,\n"
)


def test_every_row_is_featurized_or_rejected_with_its_row_number(tmp_path):
    table = tmp_path / "messy.csv"
    table.write_text(MESSY_CSV)
    report = featurize_file(table, progress=False)
    assert (report.read, report.featurized, report.rejected) == (6, 2, 4)
    rejects = pd.read_csv(report.rejects, dtype=str, keep_default_na=False)
    assert rejects["row"].tolist() == ["3", "4", "5", "6"]  # the header is row 1, as in a spreadsheet
    assert rejects["id"].tolist() == ["b", "c", "d", "e"]  # original columns carried into rejects
    assert rejects["reason"].str.startswith(("unparsable", "empty", "sanitization")).all()
    assert "row 3" in report.summary() and "rejects.csv" in report.summary()

    loaded = load_featurized(report.output)
    assert loaded.rows.tolist() == [2, 7]
    assert loaded.columns["id"].tolist() == ["a", "f"]
    assert loaded.smiles == ["CCO", "c1ccccc1"]
    dataset = loaded.dataset(targets=["pIC50"])
    assert dataset[0].y.item() == pytest.approx(5.1)
    assert np.isnan(dataset[1].y.item())  # an empty cell is a missing label, not zero


def test_shards_and_workers_do_not_change_the_dataset(tmp_path, assay_csv):
    one = featurize_file(assay_csv, tmp_path / "one", progress=False)
    many = featurize_file(assay_csv, tmp_path / "many", workers=2, shard_rows=100, progress=False)
    assert len(load_featurized(many.output).graphs) == one.featurized == 1017
    a, b = load_featurized(one.output), load_featurized(many.output)
    for key, array in a.graphs.arrays().items():
        assert np.array_equal(array, b.graphs.arrays()[key]), key
    assert a.columns.equals(b.columns)


def test_a_corpus_prefix_loads_only_its_shards_and_no_text(tmp_path, assay_csv):
    report = featurize_file(assay_csv, tmp_path / "sharded", shard_rows=100, progress=False)
    whole = load_featurized(report.output)
    prefix = load_featurized(report.output, text=False, max_graphs=150)
    assert len(prefix.graphs) == len(prefix.rows) == len(prefix.columns) == 200  # two shards of 100
    assert prefix.columns.columns.empty  # no SMILES strings held
    assert np.array_equal(prefix.graphs.x, whole.graphs.select(np.arange(200)).x)
    assert prefix.rows.tolist() == whole.rows[:200].tolist()


@pytest.mark.parametrize("workers", [1, 2])
def test_rejects_keep_their_row_numbers_across_many_small_shards(tmp_path, workers):
    table = tmp_path / "messy.csv"
    header, *rows = MESSY_CSV.splitlines()
    table.write_text("\n".join([header, *rows * 5]) + "\n")  # 30 rows, 20 of them bad
    whole = featurize_file(table, tmp_path / "whole", progress=False)
    sharded = featurize_file(table, tmp_path / "sharded", workers=workers, shard_rows=4, progress=False)
    assert (sharded.read, sharded.featurized, sharded.rejected) == (30, 10, 20)
    assert pd.read_csv(sharded.rejects).equals(pd.read_csv(whole.rejects))
    assert load_featurized(sharded.output).rows.tolist() == load_featurized(whole.output).rows.tolist()
    assert load_featurized(sharded.output).rows.tolist()[:4] == [2, 7, 8, 13]


def test_smiles_files_with_and_without_header(tmp_path):
    plain = tmp_path / "plain.smi"
    plain.write_text("CCO ethanol\nc1ccccc1 benzene ring\n\nC1CC broken\n")
    report = featurize_file(plain, progress=False)
    assert (report.featurized, report.rejected) == (2, 1)
    assert load_featurized(report.output).columns["name"].tolist() == ["ethanol", "benzene ring"]
    headed = tmp_path / "headed.txt.gz"
    with gzip.open(headed, "wt") as handle:
        handle.write("SMILES id\nCCO 1\nCC 2\n")
    assert load_featurized(featurize_file(headed, progress=False).output).rows.tolist() == [2, 3]


def test_smiles_column_is_detected_from_common_names():
    assert detect_smiles_column(["id", "Canonical_SMILES", "y"]) == "Canonical_SMILES"
    assert detect_smiles_column(["mol", "Class"]) == "mol"
    with pytest.raises(InputError, match="Columns found: id, y. Pass --smiles-column"):
        detect_smiles_column(["id", "y"])


def test_bom_quotes_and_duplicate_columns_are_read_as_text(tmp_path):
    table = tmp_path / "excel.csv"
    table.write_bytes('\ufeffsmiles,id,id,\n"CCO","007",x,\n'.encode())
    source, frame = read_table(table)
    assert source.columns == ("smiles", "id", "id.1", "column_4")
    assert frame.loc[0, "id"] == "007"  # no number guessing: text stays as written


def test_a_wide_labelled_table_reads_quietly_with_its_row_numbers(tmp_path):
    # ChEMBL 5thresh has 691 label columns: reading it must not warn of a fragmented DataFrame
    table = tmp_path / "wide.csv"
    labels = [f"target_{i}" for i in range(700)]
    rows = [",".join(["smiles", *labels])] + [",".join([smiles, *["1"] * len(labels)]) for smiles in ("CCO", "c1ccccc1")]
    table.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        source, frame = read_table(table)
    assert list(frame.columns[:2]) == [ROW_NUMBER, "smiles"] and len(frame.columns) == 702
    assert frame[ROW_NUMBER].tolist() == [2, 3] and frame.loc[1, "target_699"] == "1"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"smiles\n\xff\xfe\n", "not UTF-8"),
        (b"\x00\x01\x02binary", "binary"),
        (b"a,b\n1,2\n", "no SMILES column"),
    ],
)
def test_unusable_files_give_clear_errors(tmp_path, content, message):
    table = tmp_path / "input.csv"
    table.write_bytes(content)
    with pytest.raises(InputError, match=message):
        featurize_file(table, progress=False)


def test_missing_file_and_existing_output(tmp_path, assay_csv):
    with pytest.raises(InputError, match="no such file"):
        featurize_file(tmp_path / "nope.csv")
    out = tmp_path / "out"
    featurize_file(assay_csv, out, progress=False)
    with pytest.raises(InputError, match="--overwrite"):
        featurize_file(assay_csv, out, progress=False)
    assert featurize_file(assay_csv, out, overwrite=True, progress=False).featurized == 1017


def test_a_pickle_in_place_of_a_shard_is_refused(tmp_path, assay_csv):
    report = featurize_file(assay_csv, tmp_path / "graphs", progress=False)
    shard = report.output / "shard-00000.npz"
    np.save(shard.with_suffix(".npy"), np.array([object()], dtype=object), allow_pickle=True)
    shard.with_suffix(".npy").replace(shard)
    with pytest.raises(InputError, match="cannot be read"):
        load_featurized(report.output)


def test_target_column_errors_name_the_column(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("smiles,activity\nCCO,active\nCC,1\n")
    loaded = load_featurized(featurize_file(table, progress=False).output)
    with pytest.raises(InputError, match="non-numeric values \\(first: 'active'\\)"):
        loaded.dataset(targets=["activity"])
    with pytest.raises(InputError, match="no column 'pIC50'"):
        loaded.dataset(targets=["pIC50"])
