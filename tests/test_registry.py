"""The benchmark registry: which datasets exist, loading them, caching, and scoring with OGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import molft.data.registry as registry
from molft.data.ogb import ogb_evaluate, ogb_evaluator, ogb_input, ogb_split_dict
from molft.data.registry import (
    DATASETS,
    get_dataset_info,
    list_datasets,
    load_dataset,
    read_task_names,
)
from molft.data.splits import group_split, murcko_scaffolds
from molft.errors import InputError


def write_csv_gz(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, compression="gzip")
    return path


@pytest.fixture
def tiny_data_dir(tmp_path: Path, assay: pd.DataFrame) -> Path:
    """A data directory holding a FreeSolv-shaped file made from RDKit's bundled assay."""
    frame = pd.DataFrame({"iupac": assay["chembl_id"], "smiles": assay["smiles"], "expt": assay["pIC50"]})
    frame = frame.iloc[:200].copy()
    frame.loc[5, "smiles"] = "C1CC"  # unclosed ring
    frame.loc[9, "smiles"] = "FAIL"
    frame.loc[12, "expt"] = np.nan  # a missing label stays NaN
    write_csv_gz(tmp_path / "data" / "moleculenet" / "SAMPL.csv.gz", frame)
    return tmp_path / "data"


def test_names_are_looked_up_case_insensitively_and_by_ogb_name():
    assert get_dataset_info("bbbp").name == "BBBP"
    assert get_dataset_info("ogbg-molhiv").name == "HIV"
    assert get_dataset_info("lipo").name == "Lipophilicity"
    with pytest.raises(InputError, match="unknown dataset 'qm9'; choose one of: BBBP, Tox21"):
        get_dataset_info("qm9")


def test_every_registry_row_has_a_url_an_ogb_name_and_a_known_metric():
    from molft.evaluate import METRICS

    assert len({info.name for info in DATASETS}) == len(DATASETS) == 12
    for info in DATASETS:
        assert info.url.startswith("https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/")
        assert info.ogb_name is not None and info.ogb_name.startswith("ogbg-mol")
        assert info.metric in METRICS


def test_list_datasets_without_files_reports_all_missing(tmp_path):
    statuses = list_datasets(tmp_path)
    assert [s.info.name for s in statuses] == [info.name for info in DATASETS]
    assert not any(s.available for s in statuses)
    assert statuses[0].path == tmp_path / "moleculenet" / "BBBP.csv.gz"


def test_list_datasets_finds_the_shared_files_and_reports_pcba_missing(data_dir):
    available = {s.info.name: s.available for s in list_datasets(data_dir)}
    assert available.pop("PCBA") is False
    assert all(available.values())


def test_a_missing_file_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(InputError, match=r"no file \(.*moleculenet/pcba\.csv\.gz.*--data-dir.*MOLFT_DATA_DIR.*"
                                         r"'molft datasets pcba --download'"):
        load_dataset("pcba", data_dir=tmp_path)


def test_without_any_data_directory_the_error_says_where_it_looked(monkeypatch):
    monkeypatch.setattr(registry, "default_data_dir", lambda: None)
    with pytest.raises(InputError, match=r"no data directory .*shared/data absent.*BBBP\.csv\.gz.*--data-dir"):
        load_dataset("bbbp")


def test_load_dataset_drops_unreadable_rows_before_splitting(tiny_data_dir, tmp_path):
    loaded = load_dataset("freesolv", data_dir=tiny_data_dir, cache_dir=tmp_path / "cache")
    assert loaded.num_rows == 200
    assert [f.index for f in loaded.failures] == [5, 9]
    assert loaded.failure_reasons() == {"unparsable SMILES": 2}
    assert len(loaded.dataset) == len(loaded.smiles) == 198
    assert 5 not in loaded.row_index and 9 not in loaded.row_index
    assert loaded.task_names == ["expt"] and loaded.task_type == "regression" and loaded.metric == "rmse"
    assert loaded.y.shape == (198, 1) and loaded.y.dtype == np.float32
    assert np.isnan(loaded.y[list(loaded.row_index).index(12), 0])
    assert sorted(np.concatenate(list(loaded.split.values())).tolist()) == list(range(198))
    expected = group_split(murcko_scaffolds(loaded.smiles))
    assert all(loaded.split[k].tolist() == expected[k].tolist() for k in expected)
    assert "dropped 2 rows" in loaded.summary()


def test_graph_rows_line_up_with_smiles_and_labels(tiny_data_dir, tmp_path):
    loaded = load_dataset("freesolv", data_dir=tiny_data_dir, cache_dir=tmp_path / "cache")
    source = pd.read_csv(tiny_data_dir / "moleculenet" / "SAMPL.csv.gz")
    graph = loaded.dataset[3]
    row = int(graph.id)
    assert loaded.smiles[3] == source.loc[row, "smiles"]
    assert graph.y.item() == pytest.approx(source.loc[row, "expt"])
    train = loaded.part("train")
    assert len(train) == len(loaded.split["train"])


def test_second_load_comes_from_the_npz_cache(tiny_data_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_dataset("freesolv", data_dir=tiny_data_dir, cache_dir=cache)
    names = sorted(p.name for p in (cache / "datasets").glob("*.npz"))
    assert len(names) == 2 and "-ogb-" in names[0] and names[1].endswith("-scaffolds.npz")

    def no_featurizing(*args, **kwargs):
        raise AssertionError("featurized again instead of reading the cache")

    monkeypatch.setattr(registry, "featurize_many", no_featurizing)
    monkeypatch.setattr(registry, "murcko_scaffolds", no_featurizing)
    second = load_dataset("freesolv", data_dir=tiny_data_dir, cache_dir=cache)
    assert np.array_equal(second.dataset.graphs.x, first.dataset.graphs.x)
    assert [f.reason for f in second.failures] == [f.reason for f in first.failures]
    assert all(np.array_equal(second.split[k], first.split[k]) for k in first.split)


def test_a_changed_file_is_featurized_again(tiny_data_dir, tmp_path):
    cache = tmp_path / "cache"
    load_dataset("freesolv", data_dir=tiny_data_dir, cache_dir=cache)
    path = tiny_data_dir / "moleculenet" / "SAMPL.csv.gz"
    write_csv_gz(path, pd.read_csv(path).iloc[:50])
    assert len(load_dataset("freesolv", data_dir=tiny_data_dir, cache_dir=cache).smiles) == 48


def test_a_damaged_cache_file_is_recomputed(tiny_data_dir, tmp_path):
    cache = tmp_path / "cache"
    load_dataset("freesolv", data_dir=tiny_data_dir, cache_dir=cache)
    for path in (cache / "datasets").glob("*.npz"):
        path.write_bytes(b"not an npz")
    assert len(load_dataset("freesolv", data_dir=tiny_data_dir, cache_dir=cache).smiles) == 198


def test_an_uncompressed_download_is_found_too(tmp_path):
    write_csv_gz(tmp_path / "x.csv.gz", pd.DataFrame({"smiles": ["CCO", "c1ccccc1O"], "HIV_active": [0, 1]}))
    (tmp_path / "moleculenet").mkdir()
    pd.read_csv(tmp_path / "x.csv.gz").to_csv(tmp_path / "moleculenet" / "HIV.csv", index=False)
    assert [s.info.name for s in list_datasets(tmp_path) if s.available] == ["HIV"]
    assert load_dataset("hiv", data_dir=tmp_path, cache=False).smiles == ["CCO", "c1ccccc1O"]


def test_random_split_is_seeded(tiny_data_dir):
    first = load_dataset("freesolv", data_dir=tiny_data_dir, split="random", split_seed=1, cache=False)
    again = load_dataset("freesolv", data_dir=tiny_data_dir, split="random", split_seed=1, cache=False)
    other = load_dataset("freesolv", data_dir=tiny_data_dir, split="random", split_seed=2, cache=False)
    assert first.split["test"].tolist() == again.split["test"].tolist() != other.split["test"].tolist()
    assert [len(first.split[k]) for k in ("train", "valid", "test")] == [158, 19, 21]


def test_a_split_column_is_read_from_the_file(tmp_path):
    frame = pd.DataFrame(
        {
            "smiles": ["CCO", "c1ccccc1", "C1CC", "CCN", "CCC"],
            "Class": [1, 0, 1, 0, 1],
            "Model": ["Train", "Test", "Train", "Valid", "train"],
        }
    )
    write_csv_gz(tmp_path / "moleculenet" / "bace.csv.gz", frame)
    loaded = load_dataset("bace", data_dir=tmp_path, split="column:Model", cache=False)
    assert loaded.row_index.tolist() == [0, 1, 3, 4]  # row 2 does not parse
    assert {k: v.tolist() for k, v in loaded.split.items()} == {"train": [0, 3], "valid": [2], "test": [1]}
    frame.loc[4, "Model"] = "holdout"
    write_csv_gz(tmp_path / "moleculenet" / "bace.csv.gz", frame)
    with pytest.raises(InputError, match=r"column 'Model': .*'holdout' at index 4"):
        load_dataset("bace", data_dir=tmp_path, split="column:Model", cache=False)


def test_bad_splits_and_labels_are_reported(tmp_path):
    frame = pd.DataFrame({"smiles": ["CCO", "CCN"], "Class": [1, "yes"]})
    write_csv_gz(tmp_path / "moleculenet" / "bace.csv.gz", frame)
    with pytest.raises(InputError, match="unknown split 'fold'; choose one of: scaffold, random, column:NAME"):
        load_dataset("bace", data_dir=tmp_path, split="fold")
    with pytest.raises(InputError, match="no split column 'Model'"):
        load_dataset("bace", data_dir=tmp_path, split="column:Model")
    with pytest.raises(InputError, match=r"row 3, column 'Class': 'yes' is not a number"):
        load_dataset("bace", data_dir=tmp_path, cache=False)


def test_missing_label_columns_are_named(tmp_path):
    write_csv_gz(tmp_path / "moleculenet" / "HIV.csv.gz", pd.DataFrame({"smiles": ["CCO"], "active": [1]}))
    with pytest.raises(InputError, match="no label column 'HIV_active' for HIV. Columns found: smiles, active"):
        load_dataset("hiv", data_dir=tmp_path)


def test_ogb_input_checks_shapes_against_ogb():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, size=(50, 12)).astype(float)
    y_true[rng.random(y_true.shape) < 0.3] = np.nan
    result = ogb_evaluator("tox21").eval(ogb_input("tox21", y_true, rng.random((50, 12))))
    assert 0 <= result["rocauc"] <= 1
    with pytest.raises(InputError, match="ogbg-moltox21 has 12 tasks, but arrays with 3 were given"):
        ogb_input("tox21", y_true[:, :3], y_true[:, :3])
    with pytest.raises(InputError, match=r"labels have shape \(50, 12\) but predictions \(49, 12\)"):
        ogb_input("tox21", y_true, y_true[:49])


def test_task_counts_match_ogb(data_dir):
    for status in list_datasets(data_dir):
        if status.available:
            assert len(read_task_names(status.info.name, data_dir)) == ogb_evaluator(status.info.name).num_tasks


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def bbbp(data_dir, cache_dir):
    return load_dataset("bbbp", data_dir=data_dir, cache_dir=cache_dir)


def test_bbbp_matches_pretrain_gnns_and_ogb_sizes(bbbp):
    assert bbbp.num_rows == 2050 and len(bbbp.dataset) == 2039  # ogbg-molbbbp has 2,039 graphs
    assert bbbp.failure_reasons() == {"sanitization failed (AtomValenceException)": 11}
    assert [len(bbbp.split[k]) for k in ("train", "valid", "test")] == [1631, 204, 204]
    assert set(np.unique(bbbp.y)) == {0.0, 1.0}


def test_ogb_evaluator_scores_molft_predictions_on_bbbp(bbbp):
    test_labels = bbbp.y[bbbp.split["test"]]
    assert ogb_evaluate(bbbp, test_labels) == {"rocauc": 1.0}  # perfect scores
    random_scores = np.random.default_rng(0).random(test_labels.shape)
    assert 0.0 <= ogb_evaluate(bbbp, random_scores)["rocauc"] <= 1.0


def test_ogb_split_dict_has_ogbs_format(bbbp, cache_dir):
    split = ogb_split_dict("ogbg-molbbbp", bbbp.path.parents[1], cache_dir=cache_dir)
    assert list(split) == ["train", "valid", "test"]
    assert all(str(v.dtype) == "torch.int64" for v in split.values())
    assert split["test"].tolist() == bbbp.split["test"].tolist()
