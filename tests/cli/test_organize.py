"""``python -m delt_engine select`` / ``order``: round trips through files and one-line errors."""

import json
import subprocess
import sys

import polars as pl

from delt_engine.cli import build_parser, main
from delt_engine.cli.organize import ORDER_METHODS, SELECT_METHODS
from delt_engine.data.corpus import read_records
from delt_engine.organize.ordering import ORDERINGS
from delt_engine.organize.selection import SELECTIONS
from tests.conftest import ROOT

RECORDS = [
    {"id": f"d{i}", "text": f"doc {i}", "score": s}
    for i, s in enumerate([0.4, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.5, 0.0])
]


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "delt_engine", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_select_then_order_round_trip(tmp_path):
    src = write_jsonl(tmp_path / "scored.jsonl", RECORDS)
    kept = tmp_path / "kept.jsonl"
    done = cli("select", "--input", src, "--method", "top-r", "--ratio", "0.6", "--output", kept)
    assert done.returncode == 0, done.stderr
    first, second = done.stderr.splitlines()
    assert first.startswith(f"keeping the highest scores (no direction recorded in {src}: higher = better assumed")
    assert second.startswith("kept 6 of 10 samples (60.0%) by top-r; cutoff score 0.4")
    frame = read_records(kept)
    assert frame["id"].to_list() == ["d0", "d1", "d3", "d5", "d7", "d8"]  # original order
    assert frame.columns == ["id", "text", "score"]

    ordered = tmp_path / "ordered.parquet"
    done = cli("order", "--input", kept, "--method", "folding", "--layers", "3", "--output", ordered)
    assert done.returncode == 0, done.stderr
    assert "ordered 6 samples by folding L=3" in done.stderr
    out = pl.read_parquet(ordered)
    # ascending: d0 .4, d8 .5, d7 .6, d3 .7, d5 .8, d1 .9 -> layers [d0, d3], [d8, d5], [d7, d1]
    assert out["id"].to_list() == ["d0", "d3", "d8", "d5", "d7", "d1"]
    assert out["position"].to_list() == list(range(6)) and out["layer"].to_list() == [0, 0, 1, 1, 2, 2]


def test_select_lower_is_better_to_parquet_and_custom_field(tmp_path):
    src = write_jsonl(tmp_path / "scored.jsonl", [{**r, "ppl": 10 * r["score"]} for r in RECORDS])
    out = tmp_path / "kept.parquet"
    done = cli(
        "select",
        "--input",
        src,
        "--method",
        "threshold",
        "--threshold",
        "2.5",
        "--lower-is-better",
        "--score-field",
        "ppl",
        "--output",
        out,
    )
    assert done.returncode == 0, done.stderr
    assert pl.read_parquet(out)["id"].to_list() == ["d2", "d6", "d9"]


def test_order_shuffle_with_window_is_reproducible(tmp_path):
    src = write_jsonl(tmp_path / "scored.jsonl", RECORDS)
    runs = []
    for name in ("a.jsonl", "b.jsonl"):
        done = cli(
            "order",
            "--input",
            src,
            "--method",
            "sorting",
            "--descending",
            "--window",
            "4",
            "--seed",
            "7",
            "--output",
            tmp_path / name,
        )
        assert done.returncode == 0, done.stderr
        runs.append(read_records(tmp_path / name)["id"].to_list())
    assert runs[0] == runs[1] and sorted(runs[0]) == sorted(r["id"] for r in RECORDS)
    assert set(runs[0][:4]) == {"d1", "d5", "d3", "d7"}  # the 4 highest stay in the first block


def test_errors_are_one_line_with_exit_2(tmp_path, capsys):
    src = write_jsonl(tmp_path / "scored.jsonl", RECORDS)
    out = tmp_path / "out.jsonl"
    cases = [
        (("select", "--input", src, "--method", "top-k", "--k", "0"), "k=0 must be an integer >= 1"),
        (("select", "--input", src, "--method", "top-k", "--k", "2", "--score-field", "lqs"), "'lqs' not found"),
        (("select", "--input", tmp_path / "missing.jsonl", "--method", "top-k", "--k", "2"), "file not found"),
        (("select", "--input", src, "--method", "top-r", "--ratio", "0.05"), "keeps floor(0.05 * 10) = 0"),
        (("order", "--input", src, "--method", "folding", "--layers", "0"), "layers=0"),
        (("order", "--input", src, "--method", "sorting", "--window", "0"), "window=0"),
        (("order", "--input", src, "--method", "shuffle", "--output", src), "overwrite the input"),
        (("order", "--input", src, "--method", "shuffle", "--output", tmp_path / "out.csv"), ".jsonl or .parquet"),
    ]
    for args, message in cases:
        argv = [str(a) for a in args] + ([] if "--output" in args else ["--output", str(out)])
        assert main(argv) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, (args, err)
    assert not out.exists()
    done = cli("select", "--input", src, "--method", "top-k", "--k", "0", "--output", out)  # the real process
    assert done.returncode == 2 and done.stderr.startswith("error: k=0") and done.stderr.count("\n") == 1


def test_cli_choices_match_the_registries():
    assert SELECT_METHODS == tuple(SELECTIONS) and ORDER_METHODS == tuple(ORDERINGS)
    args = build_parser().parse_args(["order", "--input", "a.jsonl", "--method", "zigzag", "--output", "b.jsonl"])
    assert (args.layers, args.seed, args.window, args.descending, args.score_field) == (
        None,
        0,
        None,
        False,
        "score",
    )  # unset --layers: 3 for folding/zigzag


def test_dedup_drops_repeats_keeping_the_first(tmp_path, capsys):
    records = [
        {"id": "a", "text": "The cat sat on the mat today"},
        {"id": "b", "text": "A dog ran"},
        {"id": "c", "text": "the cat  sat on the MAT today"},
        {"id": "d", "text": "A dog ran"},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    assert main(["dedup", "--input", str(src), "--output", str(tmp_path / "out.parquet"), "--mode", "exact"]) == 0
    assert read_records(tmp_path / "out.parquet")["id"].to_list() == ["a", "b"]
    assert "dropped 2 of 4 records as exact duplicates" in capsys.readouterr().err
    assert (
        main(
            [
                "dedup",
                "--input",
                str(src),
                "--output",
                str(tmp_path / "o.jsonl"),
                "--mode",
                "near",
                "--text-field",
                "body",
            ]
        )
        == 2
    )
    assert "no text column 'body'" in capsys.readouterr().err


def test_dedup_edit_mode_drops_short_edited_copies(tmp_path, capsys):
    texts = ["the red fox ran home at night", "a blue bird sang all day long", "the red fox ran home at dusk"]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out.jsonl"
    assert main(["dedup", "--input", str(src), "--output", str(out), "--mode", "near"]) == 0
    assert read_records(out)["id"].to_list() == ["d0", "d1", "d2"]  # 2 of 4 word 5-grams differ: J = 1/3
    capsys.readouterr()
    assert main(["dedup", "--input", str(src), "--output", str(out), "--mode", "edit"]) == 0
    assert read_records(out)["id"].to_list() == ["d0", "d1"]  # 6 of 7 words the same: 0.857 >= 0.8
    assert "as near duplicates (word edit similarity >= 0.8)" in capsys.readouterr().err
    assert main(["dedup", "--input", str(src), "--output", str(out), "--mode", "edit", "--threshold", "0.9"]) == 0
    assert read_records(out)["id"].to_list() == ["d0", "d1", "d2"]
    capsys.readouterr()
    assert main(["dedup", "--input", str(src), "--output", str(out), "--mode", "edit", "--threshold", "0.4"]) == 2
    assert "too low for mode 'edit'" in capsys.readouterr().err
