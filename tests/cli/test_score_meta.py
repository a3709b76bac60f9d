"""Scored files carry their meaning: scorer, direction and settings, and select/order follow them."""

import json

import polars as pl
import pytest

from delt_engine.cli import main
from delt_engine.data.corpus import read_records, read_score_meta, score_meta_path, write_records
from delt_engine.errors import ConfigError, DataError
from delt_engine.jobs.score_job import run_score_job
from delt_engine.organize.selection import resolve_higher_is_better, select
from delt_engine.workspace.scorings import create_score_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = [
    "the cat sat on the mat",
    "zq xv kk qq jj zz",
    "the dog sat on the log",
    "a cat and a dog sat",
    "qqq www eee rrr ttt",
    "the mat was on the floor",
    "xk zq vj wq pz qk",
    "the cat saw the dog",
    "on the mat sat the cat",
    "jj kk ll mm nn oo pp",
]
TINY = ["--model", "tiny-test", "--device", "cpu", "--max-length", "16", "--batch-size", "4", "--set", "vocab_size=300"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The corpus scored by perplexity, once as JSONL and once as Parquet."""
    tmp = tmp_path_factory.mktemp("meta")
    corpus = tmp / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    out = {}
    for suffix in ("jsonl", "parquet"):
        out[suffix] = tmp / f"ppl.{suffix}"
        assert (
            main(
                [
                    "score",
                    "--input",
                    str(corpus),
                    "--method",
                    "perplexity",
                    "--output",
                    str(out[suffix]),
                    "--cache-dir",
                    str(tmp / "cache"),
                    *TINY,
                ]
            )
            == 0
        )
    return out


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def test_scored_files_record_scorer_direction_and_settings(scored):
    for path in scored.values():
        meta = read_score_meta(path)
        assert meta["scorer"] == "perplexity" and meta["direction"] == "higher_harder"
        assert meta["score_field"] == "score" and meta["n_scored"] == len(TEXTS)
        assert meta["settings"]["model"] == "tiny-test" and meta["settings"]["max_length"] == 16
        # what was given and the defaults the scorer filled in (a preset proxy is warmed up on the corpus)
        assert meta["settings"]["options"] == {"vocab_size": 300, "warmup_steps": 100, "warmup_lr": 3e-3}
    assert score_meta_path(scored["jsonl"]).name == "ppl.jsonl.meta.json"
    assert read_score_meta(scored["jsonl"])["matches_file"] is True
    assert "delt.score" in pl.read_parquet_metadata(scored["parquet"])


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_select_without_flags_keeps_the_lowest_perplexities(scored, suffix, tmp_path, capsys):
    out = tmp_path / f"kept.{suffix}"
    code, err = run(capsys, "select", "--input", scored[suffix], "--method", "top-r", "--ratio", "0.3", "--output", out)
    assert code == 0, err
    frame = read_records(scored[suffix])
    lowest = set(frame.sort("score")["id"].head(3).to_list())  # brute force: the 3 smallest perplexities
    kept = read_records(out)
    assert set(kept["id"].to_list()) == lowest
    assert kept["score"].max() < frame.filter(~pl.col("id").is_in(list(lowest)))["score"].min()
    assert err.splitlines()[0] == "keeping the lowest perplexity scores (lower = better for this scorer)"
    # the selection keeps the meaning of its scores
    meta = read_score_meta(out)
    assert meta["scorer"] == "perplexity" and meta["direction"] == "higher_harder"


def test_flags_override_the_recorded_direction(scored, tmp_path, capsys):
    out = tmp_path / "kept.jsonl"
    code, err = run(
        capsys,
        "select",
        "--input",
        scored["jsonl"],
        "--method",
        "top-k",
        "--k",
        "2",
        "--higher-is-better",
        "--output",
        out,
    )
    assert code == 0, err
    frame = read_records(scored["jsonl"])
    assert set(read_records(out)["id"].to_list()) == set(frame.sort("score", descending=True)["id"].head(2))
    assert "--higher-is-better; the scores record lower = better for perplexity" in err.splitlines()[0]
    code, err = run(
        capsys,
        "select",
        "--input",
        scored["jsonl"],
        "--method",
        "top-k",
        "--k",
        "2",
        "--lower-is-better",
        "--output",
        out,
    )
    assert code == 0 and err.splitlines()[0] == "keeping the lowest perplexity scores (--lower-is-better)"


def test_both_flags_are_refused(scored, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "select",
                "--input",
                str(scored["jsonl"]),
                "--method",
                "top-k",
                "--k",
                "2",
                "--higher-is-better",
                "--lower-is-better",
                "--output",
                str(tmp_path / "o.jsonl"),
            ]
        )
    assert "not allowed with argument" in capsys.readouterr().err


def test_order_and_dedup_keep_the_metadata_and_name_the_first_end(scored, tmp_path, capsys):
    ordered = tmp_path / "ordered.jsonl"
    code, err = run(capsys, "order", "--input", scored["parquet"], "--method", "sorting", "--output", ordered)
    assert code == 0, err
    assert "; lowest perplexity scores first (lower = better for this scorer); wrote" in err
    scores = read_records(ordered)["score"].to_list()
    assert scores == sorted(scores)
    assert read_score_meta(ordered)["scorer"] == "perplexity"
    code, err = run(
        capsys,
        "order",
        "--input",
        ordered,
        "--method",
        "folding",
        "--descending",
        "--output",
        tmp_path / "fold.parquet",
    )
    assert code == 0 and "each layer from highest to lowest perplexity scores" in err
    deduped = tmp_path / "unique.parquet"
    code, err = run(capsys, "dedup", "--input", ordered, "--mode", "exact", "--output", deduped)
    assert code == 0, err
    assert read_score_meta(deduped)["direction"] == "higher_harder"


def test_unrecorded_direction_is_said_and_higher_is_assumed(tmp_path, capsys):
    src = tmp_path / "plain.jsonl"
    write_records(pl.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "score": [3.0, 1.0, 2.0]}), src)
    out = tmp_path / "kept.jsonl"
    code, err = run(capsys, "select", "--input", src, "--method", "top-k", "--k", "1", "--output", out)
    assert code == 0 and read_records(out)["id"].to_list() == ["a"]
    assert err.splitlines()[0] == (
        f"keeping the highest scores (no direction recorded in {src}: higher = better "
        "assumed; pass --lower-is-better for scores like perplexity)"
    )
    assert not score_meta_path(out).exists()


def test_direction_of_another_field_is_not_borrowed(scored, tmp_path, capsys):
    frame = read_records(scored["jsonl"]).with_columns((-pl.col("score")).alias("neg"))
    src = tmp_path / "two.jsonl"
    write_records(
        frame, src, score_meta={k: v for k, v in read_score_meta(scored["jsonl"]).items() if k != "matches_file"}
    )
    code, err = run(
        capsys,
        "select",
        "--input",
        src,
        "--method",
        "top-k",
        "--k",
        "1",
        "--score-field",
        "neg",
        "--output",
        tmp_path / "o.jsonl",
    )
    assert code == 0
    assert err.startswith(f"keeping the highest 'neg' values (no direction recorded for 'neg' in {src}")


def test_changed_jsonl_is_noticed_and_damaged_metadata_is_an_error(scored, tmp_path, capsys):
    src = tmp_path / "edited.jsonl"
    write_records(read_records(scored["jsonl"]), src, score_meta=read_score_meta(scored["jsonl"]))
    lines = src.read_text().splitlines()
    src.write_text("\n".join(lines[:-1]) + "\n")  # edited by hand after scoring
    assert read_score_meta(src)["matches_file"] is False
    code, err = run(capsys, "select", "--input", src, "--method", "top-k", "--k", "2", "--output", tmp_path / "o.jsonl")
    assert code == 0
    assert f"note: {src} changed after its scores were recorded" in err.splitlines()[0]
    score_meta_path(src).write_text("{not json")
    code, err = run(capsys, "select", "--input", src, "--method", "top-k", "--k", "2", "--output", tmp_path / "o.jsonl")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {score_meta_path(src)}: damaged score metadata (not JSON") and "delete it" in err
    with pytest.raises(DataError, match="no direction"):
        score_meta_path(src).write_text(json.dumps({"score": {"scorer": "x"}}))
        read_score_meta(src)


def test_rewriting_without_metadata_drops_a_stale_sidecar(tmp_path):
    path = tmp_path / "f.jsonl"
    frame = pl.DataFrame({"id": ["a"], "text": ["x"], "score": [1.0]})
    write_records(frame, path, score_meta={"scorer": "length", "direction": "higher_harder"})
    assert read_score_meta(path)["scorer"] == "length"
    write_records(frame.drop("score"), path)
    assert not score_meta_path(path).exists() and read_score_meta(path) is None
    parquet = tmp_path / "f.parquet"
    write_records(frame, parquet)
    assert read_score_meta(parquet) is None


def test_scoring_job_writes_metadata_into_scores_parquet(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    job = create_score_job(tmp_path / "scores", {"input": str(corpus), "method": "length"})
    run_score_job(job)
    meta = read_score_meta(job / "scores.parquet")
    assert meta["scorer"] == "length" and meta["direction"] == "higher_harder"
    assert meta["settings"]["seed"] == 0


def test_import_scores_takes_the_recorded_direction(scored, tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    code = main(
        [
            "import-scores",
            "--scores",
            str(scored["parquet"]),
            "--corpus",
            str(corpus),
            "--name",
            "ppl",
            "--workspace",
            str(tmp_path / "ws"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "(higher_harder, recorded in the file)" in out
    (job,) = (tmp_path / "ws" / "scores").iterdir()
    assert json.loads((job / "status.json").read_text())["direction"] == "higher_harder"


def test_engine_select_takes_a_direction():
    frame = pl.DataFrame({"id": ["a", "b", "c", "d"], "score": [4.0, 1.0, 3.0, 2.0]})
    assert select(frame, "top-k", k=2, direction="higher_harder")["id"].to_list() == ["b", "d"]
    assert select(frame, "top-k", k=2, direction="higher_better")["id"].to_list() == ["a", "c"]
    assert select(frame, "top-k", k=2, direction="higher_harder", higher_is_better=True)["id"].to_list() == ["a", "c"]
    assert select(frame, "top-k", k=2)["id"].to_list() == ["a", "c"]  # no direction: higher is better
    assert resolve_higher_is_better(None, None) is True
    with pytest.raises(ConfigError, match="direction 'lower' is not known"):
        resolve_higher_is_better(None, "lower")
