"""Scores made elsewhere registered as a finished scoring job (engine function and CLI)."""

import json
import subprocess
import sys

import polars as pl
import pytest

from delt_engine.errors import ConfigError, DataError
from delt_engine.fileio import read_json
from delt_engine.workspace.score_import import import_scores
from tests.conftest import ROOT

TEXTS = ["the cat sat", "a dog ran far away", "birds sing", "zz qq xx", "the old mat"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": t, "kind": "k" if i % 2 else "j"}) + "\n" for i, t in enumerate(TEXTS)
        )
    )
    return path


def _scores_file(tmp_path, rows, name="scores.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_copies_scores_and_components_and_leaves_the_file_alone(tmp_path, corpus):
    rows = [
        {"id": f"d{i}", "score": float(i) / 2, "text": TEXTS[i], "kind": "x", "quality": i * 1.5, "cos": [0.1 * i, 0.2]}
        for i in (4, 0, 2)
    ]  # a subset, in another order, with corpus fields
    src = _scores_file(tmp_path, rows)
    before = src.read_bytes()
    job = import_scores(tmp_path / "scores", corpus, src, name="lqs-cli", direction="higher_harder")
    assert src.read_bytes() == before
    status, config = read_json(job / "status.json"), read_json(job / "config.json")
    assert status["state"] == "done" and status["n_scored"] == 3 and status["n_corpus"] == 5
    assert status["direction"] == "higher_harder" and config["method"] == "lqs-cli"
    assert config["input"] == str(corpus.absolute()) and config["imported_from"] == str(src.absolute())
    table = pl.read_parquet(job / "scores.parquet")
    assert table.columns == ["id", "score", "quality", "cos"]  # text and kind are the corpus's own
    assert table["id"].to_list() == ["d4", "d0", "d2"] and table["score"].to_list() == [2.0, 0.0, 1.0]
    assert table["cos"].to_list()[0] == pytest.approx([0.4, 0.2])


def test_parquet_with_integer_ids_and_other_column_names(tmp_path, corpus):
    src = tmp_path / "s.parquet"
    pl.DataFrame({"sample": ["d1", "d3"], "value": [3, 4]}).write_parquet(src)
    job = import_scores(tmp_path / "scores", corpus, src, name="custom", id_field="sample", score_field="value")
    assert pl.read_parquet(job / "scores.parquet").to_dicts() == [
        {"id": "d1", "score": 3.0},
        {"id": "d3", "score": 4.0},
    ]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"id": "d0", "value": 1.0}], "no column 'score' (columns: id, value)"),
        ([{"id": "d0", "score": "high"}], "not numbers"),
        ([{"id": "d0", "score": 1.0}, {"id": "d0", "score": 2.0}], "id 'd0' appears more than once (rows 1, 2)"),
        ([{"id": "d0", "score": 1.0}, {"id": "d1", "score": None}], "row 2 (id 'd1') has score None"),
        ([{"id": "d0", "score": 1.0}, {"id": "nope", "score": 2.0}], "1 of 2 ids are not in corpus.jsonl (e.g. 'nope'"),
        ([{"score": 1.0}], "no column 'id'"),
    ],
)
def test_bad_scores_files_say_what_is_wrong(tmp_path, corpus, rows, message):
    with pytest.raises(DataError) as err:
        import_scores(tmp_path / "scores", corpus, _scores_file(tmp_path, rows), name="custom")
    assert message in str(err.value)
    assert not (tmp_path / "scores").exists() or not any((tmp_path / "scores").iterdir())  # nothing half-made


def test_nan_score_in_parquet_is_refused(tmp_path, corpus):
    src = tmp_path / "s.parquet"
    pl.DataFrame({"id": ["d0", "d1"], "score": [1.0, float("nan")]}).write_parquet(src)
    with pytest.raises(DataError, match=r"row 2 \(id 'd1'\) has score nan"):
        import_scores(tmp_path / "scores", corpus, src, name="custom")


@pytest.mark.parametrize("kw", [{"name": "bad name"}, {"name": ""}, {"name": "x", "direction": "up"}])
def test_bad_name_or_direction(tmp_path, corpus, kw):
    with pytest.raises(ConfigError):
        import_scores(tmp_path / "scores", corpus, _scores_file(tmp_path, [{"id": "d0", "score": 1}]), **kw)


def test_cli_scores_then_imports_into_a_workspace(tmp_path, corpus):
    env_cmd = [sys.executable, "-m", "delt_engine"]
    out = tmp_path / "scored.parquet"
    done = subprocess.run(
        [*env_cmd, "score", "--input", str(corpus), "--method", "length", "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [
            *env_cmd,
            "import-scores",
            "--scores",
            str(out),
            "--corpus",
            str(corpus),
            "--name",
            "length",
            "--direction",
            "higher_harder",
            "--workspace",
            str(tmp_path / "ws"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (job,) = (tmp_path / "ws" / "scores").iterdir()
    table = pl.read_parquet(job / "scores.parquet")
    scored = pl.read_parquet(out)
    assert dict(zip(table["id"], table["score"])) == dict(zip(scored["id"], scored["score"].cast(pl.Float64)))
    assert table.height == len(TEXTS) and "text" not in table.columns
    bad = subprocess.run(
        [
            *env_cmd,
            "import-scores",
            "--scores",
            str(corpus),
            "--corpus",
            str(corpus),
            "--name",
            "x",
            "--workspace",
            str(tmp_path / "ws"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert bad.returncode == 2 and "no column 'score'" in bad.stderr
