"""Hugging Face datasets the way their users call them: config names, sliced splits, streaming with a
row limit. Local folders only (a script-free dataset folder with several configs, save_to_disk folders);
the conftest keeps the Hub offline."""

import json
import os
import subprocess
import sys

import pytest

from delt_engine.cli import main
from delt_engine.data.corpus import load_corpus, read_records
from delt_engine.errors import ConfigError, DataError
from tests.conftest import ROOT

README = """---
configs:
- config_name: raw
  data_files:
  - split: train
    path: data/raw/train.jsonl
  - split: test
    path: data/raw/test.jsonl
- config_name: clean
  default: true
  data_files:
  - split: train
    path: data/clean/train.jsonl
  - split: test
    path: data/clean/test.jsonl
---
# A tiny dataset with two configs
"""
SIZES = {"train": 20, "test": 5}


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    return datasets


@pytest.fixture
def configs_folder(tmp_path):
    """A datasets folder (no loading script) with configs "raw" and "clean" (the default)."""
    root = tmp_path / "two-configs"
    for config in ("raw", "clean"):
        (root / "data" / config).mkdir(parents=True)
        for split, n in SIZES.items():
            rows = [{"text": f"{config} {split} doc {i}", "n": i} for i in range(n)]
            (root / "data" / config / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "README.md").write_text(README)
    return root


def texts(loaded):
    return loaded.frame["text"].to_list()


def test_config_name_picks_the_config_and_the_default_is_the_datasets(configs_folder, hf_cache):
    raw = load_corpus(configs_folder, name="raw")
    assert texts(raw) == [f"raw train doc {i}" for i in range(20)]
    assert raw.report.format == "hf" and "split train of config raw" in raw.report.summary()
    assert texts(load_corpus(configs_folder))[0] == "clean train doc 0"  # the README's default config
    assert texts(load_corpus(configs_folder, name="raw", split="test")) == [f"raw test doc {i}" for i in range(5)]


def test_unknown_config_names_the_option_and_the_configs(configs_folder, hf_cache):
    with pytest.raises(DataError) as info:
        load_corpus(configs_folder, name="wikitext-2-raw-v1")
    message = str(info.value)
    assert "name='wikitext-2-raw-v1'" in message and "'raw'" in message and "'clean'" in message
    assert "--subset NAME" in message


@pytest.mark.parametrize(
    "split, expected",
    [
        ("train[:3]", [0, 1, 2]),
        ("train[17:]", [17, 18, 19]),
        ("train[5:8]", [5, 6, 7]),
        ("train[10%:20%]", [2, 3]),
    ],
)
def test_sliced_splits(configs_folder, hf_cache, split, expected):
    loaded = load_corpus(configs_folder, name="raw", split=split)
    assert texts(loaded) == [f"raw train doc {i}" for i in expected]
    assert loaded.frame["id"].to_list() == [f"doc-{i:06d}" for i in range(len(expected))]


def test_streaming_with_a_limit_reads_only_the_first_rows(configs_folder, hf_cache, tmp_path):
    loaded = load_corpus(configs_folder, name="raw", split="test", streaming=True, limit=2)
    assert texts(loaded) == ["raw test doc 0", "raw test doc 1"]
    assert loaded.frame["n"].to_list() == [0, 1]
    assert "streamed" in loaded.report.summary() and "first 2 rows (limit)" in loaded.report.summary()
    # a stream leaves no Arrow copy of the split in the datasets cache
    assert not list((tmp_path / "hf-cache").rglob("*.arrow"))
    sliced = load_corpus(configs_folder, name="raw", split="train[4:9]", streaming=True, limit=3)
    assert texts(sliced) == [f"raw train doc {i}" for i in (4, 5, 6)]
    assert len(texts(load_corpus(configs_folder, name="raw", streaming=True))) == 20
    with pytest.raises(ConfigError, match="cannot be streamed"):
        load_corpus(configs_folder, name="raw", split="train[:10%]", streaming=True)


def test_limit_applies_to_any_source_and_streaming_only_to_datasets(tmp_path, configs_folder, hf_cache):
    assert texts(load_corpus(configs_folder, name="clean", limit=4)) == [f"clean train doc {i}" for i in range(4)]
    file = tmp_path / "c.jsonl"
    file.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(10)))
    assert texts(load_corpus(file, limit=3)) == ["t0", "t1", "t2"]
    assert texts(load_corpus(file, limit=30)) == [f"t{i}" for i in range(10)]
    with pytest.raises(ConfigError, match="config name \\(--subset\\) applies to datasets loaded with"):
        load_corpus(file, name="raw")
    with pytest.raises(ConfigError, match="--streaming applies to"):
        load_corpus(file, streaming=True)
    with pytest.raises(ConfigError, match="positive number of rows"):
        load_corpus(file, limit=0)


def test_save_to_disk_folders_take_sliced_splits(tmp_path, hf_cache):
    ds = hf_cache.Dataset.from_dict({"text": [f"row {i}" for i in range(10)]})
    hf_cache.DatasetDict({"train": ds, "test": ds.select([7, 8])}).save_to_disk(str(tmp_path / "dict"))
    assert texts(load_corpus(tmp_path / "dict", split="train[2:4]")) == ["row 2", "row 3"]
    assert texts(load_corpus(tmp_path / "dict", split="train[:1]+test")) == ["row 0", "row 7", "row 8"]
    with pytest.raises(DataError, match="available splits: train, test"):
        load_corpus(tmp_path / "dict", split="validation[:3]")
    ds.save_to_disk(str(tmp_path / "one"))  # a single Dataset: the slice applies to it
    assert texts(load_corpus(tmp_path / "one", split="train[-2:]")) == ["row 8", "row 9"]
    assert len(texts(load_corpus(tmp_path / "one"))) == 10
    with pytest.raises(ConfigError, match="--streaming applies to"):
        load_corpus(tmp_path / "one", streaming=True)


def test_import_command_with_subset_split_and_limit(tmp_path, configs_folder, hf_cache, capsys):
    out = tmp_path / "wiki.jsonl"
    assert (
        main(
            [
                "import",
                "--input",
                str(configs_folder),
                "--subset",
                "raw",
                "--split",
                "train[:6]",
                "--limit",
                "4",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "split train[:6] of config raw" in printed and "first 4 rows (limit)" in printed
    assert read_records(out)["text"].to_list() == [f"raw train doc {i}" for i in range(4)]
    out2 = tmp_path / "stream.parquet"
    assert (
        main(
            [
                "import",
                "--input",
                str(configs_folder),
                "--name",
                "clean",
                "--split",
                "test",
                "--streaming",
                "--limit",
                "2",
                "--output",
                str(out2),
            ]
        )
        == 0
    )
    assert read_records(out2)["text"].to_list() == ["clean test doc 0", "clean test doc 1"]


def test_score_command_reads_a_dataset_config(tmp_path, configs_folder):
    out = tmp_path / "scored.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "delt_engine",
            "score",
            "--input",
            str(configs_folder),
            "--subset",
            "raw",
            "--split",
            "test",
            "--streaming",
            "--limit",
            "3",
            "--method",
            "length",
            "--output",
            str(out),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache")},
    )
    assert proc.returncode == 0, proc.stderr
    frame = read_records(out)
    assert frame["text"].to_list() == ["raw test doc 0", "raw test doc 1", "raw test doc 2"]
    assert frame["score"].null_count() == 0
