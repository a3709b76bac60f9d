"""``python -m delt_engine score``: file mode, job-dir mode, torchrun ranks and errors."""

import json
import os
import subprocess
import sys

import polars as pl
import pytest

from delt_engine.cli import main
from delt_engine.cli.score import parse_settings
from delt_engine.errors import ConfigError
from delt_engine.jobs.protocol import read_status
from delt_engine.workspace.scorings import create_score_job
from tests.conftest import ROOT

RECORDS = [
    {"id": "a1", "text": "The lighthouse keeper wrote letters nobody answered.", "kind": "prose"},
    {"id": "b2", "text": "Subscribe! Subscribe! Subscribe! Subscribe! Subscribe!", "kind": "spam"},
    {"id": "c3", "text": "Water boils at a lower temperature high in the mountains.", "kind": "fact"},
    {"id": "d4", "text": "Two plus two is four, and four plus four is eight.", "kind": "math"},
    {"id": "e5", "text": "Owls turn their heads because their eyes cannot move.", "kind": "fact"},
]
TINY = ["--model", "tiny-test", "--device", "cpu", "--max-length", "32", "--batch-size", "2", "--set", "vocab_size=300"]


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def cli(*args, env=None):
    env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "delt_engine", "score", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_parse_settings():
    got = parse_settings(["steps=3", "lr=0.01", "flag=true", "other=False", "name=abc", "expr=a=b", "lst=[1,2]"])
    assert got == {"steps": 3, "lr": 0.01, "flag": True, "other": False, "name": "abc", "expr": "a=b", "lst": [1, 2]}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_settings(["novalue"])


def test_length_to_jsonl_keeps_every_record(tmp_path, corpus_file):
    out = tmp_path / "scored.jsonl"
    proc = cli("--input", corpus_file, "--method", "length", "--output", out, "--cache-dir", tmp_path / "c", *TINY)
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [r["id"] for r in RECORDS]
    for row, rec in zip(rows, RECORDS):
        assert row["text"] == rec["text"] and row["kind"] == rec["kind"]
        assert row["score"] == row["n_tokens"] > 0 and row["n_chars"] == len(rec["text"])
    assert "scored 5 of 5 samples with length" in proc.stderr


def test_perplexity_to_parquet_and_a_fake_rank_writes_nothing(tmp_path, corpus_file):
    out = tmp_path / "scored.parquet"
    args = ["--input", corpus_file, "--method", "perplexity", "--output", out, *TINY, "--set", "warmup_steps=2"]
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    frame = pl.read_parquet(out)
    assert frame["id"].to_list() == [r["id"] for r in RECORDS]
    assert {"score", "loss", "n_tokens", "kind"} <= set(frame.columns)
    assert frame["score"].min() > 1.0 and frame["score"].null_count() == 0
    # perplexity shards its samples across torchrun ranks (tests/test_lqs_distributed.py); a process
    # that claims a world of 2 without torchrun's rendezvous is told how to start, and writes nothing
    other = tmp_path / "rank1.parquet"
    args[args.index(out)] = other
    proc = cli(*args, env={"RANK": "1", "WORLD_SIZE": "2"})
    assert proc.returncode == 2 and "torchrun --nproc_per_node" in proc.stderr
    assert not other.exists()


def test_job_dir_mode(tmp_path, corpus_file):
    job_dir = create_score_job(tmp_path / "scores", {"input": str(corpus_file), "method": "compression"})
    proc = cli("--job-dir", job_dir)
    assert proc.returncode == 0, proc.stderr
    status = read_status(job_dir)
    assert status["state"] == "done" and status["n_scored"] == len(RECORDS)
    assert pl.read_parquet(job_dir / "scores.parquet")["id"].to_list() == [r["id"] for r in RECORDS]


def test_bad_input_exits_2_with_one_line_error(tmp_path):
    proc = cli("--input", tmp_path / "missing.jsonl", "--method", "length", "--output", tmp_path / "o.jsonl")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "length", "--output", "o.jsonl"], "needs --input"),
        (["--input", "x.jsonl", "--method", "nope", "--output", "o.jsonl"], "not known"),
        (["--input", "x.jsonl", "--method", "length", "--output", "o.csv"], ".jsonl or .parquet"),
        (["--job-dir", "d", "--input", "x.jsonl"], "drop --input"),
        (["--input", "x.jsonl", "--method", "lqs", "--output", "o.jsonl", "--proxy-size", "0"], "--proxy-size"),
        (["--input", "x.jsonl", "--method", "lqs", "--output", "o.jsonl"], "add --target FILE"),  # before reading
        (["--input", "x.jsonl", "--method", "pds", "--output", "o.jsonl"], "add --target FILE"),
    ],
)
def test_argument_errors(capsys, argv, message):
    assert main(["score", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
