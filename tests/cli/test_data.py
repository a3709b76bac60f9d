"""CLI commands `import` and `demo-data` (python -m delt_engine ...)."""

import hashlib
import json
import subprocess
import sys

import polars as pl

from delt_engine.cli import build_parser, main
from delt_engine.data.corpus import FORMATS, load_corpus, read_records
from tests.conftest import ROOT


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "delt_engine", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_import_writes_normalised_jsonl_and_prints_the_report(tmp_path, capsys):
    src = write_jsonl(
        tmp_path / "raw.jsonl",
        [
            {"body": "a", "lang": "en"},
            {"body": "a", "lang": "fr"},
            {"body": " ", "lang": "de"},
            {"body": "b", "lang": "en"},
        ],
    )
    out = tmp_path / "out" / "corpus.jsonl"
    code = main(["import", "--input", str(src), "--output", str(out), "--text-field", "body", "--dedup"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "4 read, 2 kept" in printed and "1 empty dropped" in printed and "1 duplicates dropped" in printed
    assert f"wrote 2 documents to {out}" in printed
    frame = read_records(out)
    assert frame.rows() == [("doc-000000", "a", "en"), ("doc-000003", "b", "en")]
    assert frame.columns == ["id", "text", "lang"]


def test_import_to_parquet_with_options(tmp_path, capsys):
    src = tmp_path / "raw.jsonl"
    src.write_bytes(b'{"k": "x1", "text": "caf\xe9"}\n{oops\n{"k": "x2", "text": "ok"}\n')
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "corpus.parquet"
    code = main(
        [
            "import",
            "--input",
            str(src),
            "--output",
            str(out),
            "--id-field",
            "k",
            "--skip-bad-lines",
            "--replace-invalid-utf8",
        ]
    )
    assert code == 0
    assert "1 bad lines skipped (lines 2)" in capsys.readouterr().out
    frame = pl.read_parquet(out)
    assert frame.rows() == [("x1", "caf\ufffd"), ("x2", "ok")]
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before


def test_import_output_is_loadable_with_the_same_ids_and_hash(tmp_path, capsys):
    src = write_jsonl(tmp_path / "raw.jsonl", [{"uid": "u9", "text": "x"}, {"uid": "u1", "text": "y"}])
    out = tmp_path / "norm.jsonl"
    assert main(["import", "--input", str(src), "--output", str(out), "--id-field", "uid"]) == 0
    again, first = load_corpus(out), load_corpus(src, id_field="uid")
    assert again.frame.equals(first.frame) and again.report.content_hash == first.report.content_hash


def test_import_txt_paragraphs(tmp_path, capsys):
    src = tmp_path / "book.txt"
    src.write_text("one\ntwo\n\nthree\n", encoding="utf-8")
    out = tmp_path / "book.jsonl"
    assert main(["import", "--input", str(src), "--output", str(out), "--text-mode", "paragraphs"]) == 0
    assert read_records(out)["text"].to_list() == ["one\ntwo", "three"]


def test_import_bad_input_is_a_one_line_error_with_exit_code_2(tmp_path):
    src = tmp_path / "broken.jsonl"
    src.write_text('{"text": "fine"}\n{"text": "cut off\n', encoding="utf-8")
    out = tmp_path / "never.jsonl"
    result = run_cli("import", "--input", src, "--output", out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "broken.jsonl" in lines[0] and "line 2" in lines[0] and "Traceback" not in result.stderr
    assert not out.exists()


def test_import_refuses_bad_output_and_overwriting_the_input(tmp_path, capsys):
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    before = src.read_bytes()
    assert main(["import", "--input", str(src), "--output", str(tmp_path / "c.csv")]) == 2
    assert ".jsonl or .parquet" in capsys.readouterr().err
    assert main(["import", "--input", str(src), "--output", str(src)]) == 2
    assert "overwrite the input" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_import_missing_text_field_lists_columns(tmp_path, capsys):
    src = write_jsonl(tmp_path / "c.jsonl", [{"content": "a", "n": 1}])
    assert main(["import", "--input", str(src), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "'content'" in err and "'n'" in err and "--text-field" in err


def test_import_format_choices_match_the_engine():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    fmt = next(a for a in sub.choices["import"]._actions if a.dest == "fmt")
    assert tuple(fmt.choices) == FORMATS


def test_demo_data_writes_the_three_files(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("demo-data", "--out", out, "--seed", 3, "--n-docs", 200)
    assert result.returncode == 0, result.stderr
    for name in ("corpus.jsonl", "target.jsonl", "benchmark.jsonl"):
        path = out / name
        assert path.is_file()
        n = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        assert n > 0 and f"{path} ({n} records)" in result.stdout
    corpus = load_corpus(out / "corpus.jsonl")
    assert corpus.frame.height == 200
    benchmark = read_records(out / "benchmark.jsonl")
    assert {"task", "context", "choices", "answer"} <= set(benchmark.columns)


def test_demo_data_rejects_a_non_positive_size(tmp_path):
    result = run_cli("demo-data", "--out", tmp_path, "--n-docs", 0)
    assert result.returncode == 2 and "positive" in result.stderr
