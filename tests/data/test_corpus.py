"""corpus.load_corpus / read_records / write_records: every format, ids, every bad-input path."""

import hashlib
import json

import polars as pl
import pytest

from delt_engine.data.corpus import (
    LoadReport,
    corpus_hash,
    detect_format,
    load_corpus,
    read_records,
    row_ids,
    write_records,
)
from delt_engine.data.formats import read_jsonl, records_to_frame
from delt_engine.errors import ConfigError, DataError


def write(path, content):
    """Write str (UTF-8) or bytes fixtures."""
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def jsonl(path, records):
    return write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path, **kwargs):
    """load_corpus, asserting the input file is byte-for-byte unchanged afterwards (even on error)."""
    before = digest(path)
    try:
        return load_corpus(path, **kwargs)
    finally:
        assert digest(path) == before


def load_error(path, **kwargs):
    with pytest.raises(DataError) as info:
        load(path, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- JSONL


def test_jsonl_frame_layout_ids_and_metadata(tmp_path):
    path = jsonl(
        tmp_path / "c.jsonl",
        [
            {"kind": "a", "text": "first doc", "score": 1, "tags": ["x", "y"]},
            {"kind": "b", "text": "second doc", "score": 2.5, "tags": []},
            {"text": "third doc", "extra": {"k": 1}},
        ],
    )
    loaded = load(path)
    frame = loaded.frame
    assert frame.columns[:2] == ["id", "text"]
    assert set(frame.columns[2:]) == {"kind", "score", "tags", "extra"}
    assert frame.schema["id"] == pl.String
    assert frame["id"].to_list() == ["doc-000000", "doc-000001", "doc-000002"]
    assert frame["text"].to_list() == ["first doc", "second doc", "third doc"]
    assert frame["score"].to_list() == [1.0, 2.5, None]
    assert frame["tags"].to_list() == [["x", "y"], [], None]
    assert frame["extra"].to_list()[2] == {"k": 1}
    report = loaded.report
    assert (report.format, report.n_read, report.n_kept) == ("jsonl", 3, 3)
    assert report.id_field is None
    assert report.content_hash == corpus_hash(frame)
    assert load(path).frame.equals(frame)  # deterministic


def test_jsonl_fast_path_matches_line_by_line_reference(tmp_path):
    lines = [
        {"text": "a", "n": 1, "f": 1.5, "nested": {"k": [1, 2]}, "flag": True},
        {"text": "b", "n": None, "f": 2, "nested": {"k": []}, "flag": False, "late": "x"},
        {"text": "c", "f": 3},
    ]
    data = ("\n".join(json.dumps(r) for r in lines) + "\n").encode()
    fast = read_jsonl(tmp_path / "x.jsonl", data).frame
    reference = records_to_frame([json.loads(line) for line in data.decode().splitlines()])
    assert fast.equals(reference)
    assert fast.schema == reference.schema


def test_jsonl_mixed_types_are_kept_as_text_never_coerced(tmp_path):
    path = jsonl(
        tmp_path / "m.jsonl",
        [{"text": "a", "m": 1}, {"text": "b", "m": "x"}, {"text": "c", "m": True}, {"text": "d", "m": [1]}],
    )
    assert load(path).frame["m"].to_list() == ["1", "x", "true", "[1]"]


def test_jsonl_date_like_strings_stay_strings(tmp_path):
    path = jsonl(
        tmp_path / "d.jsonl",
        [{"text": "2020-01-01", "when": "2021-05-06 10:00:00"}, {"text": "2020-01-02", "when": "2021-05-07 10:00:00"}],
    )
    frame = load(path).frame
    assert frame.schema["text"] == pl.String and frame.schema["when"] == pl.String
    assert frame["when"].to_list() == ["2021-05-06 10:00:00", "2021-05-07 10:00:00"]


def test_jsonl_blank_lines_and_crlf_are_fine(tmp_path):
    path = write(tmp_path / "b.jsonl", '{"text": "a"}\r\n\r\n   \n{"text": "b"}\r\n')
    assert load(path).frame["text"].to_list() == ["a", "b"]


def test_malformed_jsonl_line_names_file_line_and_column(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n\n{"text": "broken",}\n{"text": "fine"}\n')
    message = load_error(path)
    assert "bad.jsonl" in message and "line 3" in message and "column" in message
    assert "--skip-bad-lines" in message


@pytest.mark.parametrize(
    "line, kind", [("[1, 2]", "array"), ('"just text"', "string"), ("null", "null"), ("42", "number")]
)
def test_jsonl_line_that_is_not_an_object(tmp_path, line, kind):
    path = write(tmp_path / "nonobj.jsonl", f'{{"text": "a"}}\n{line}\n{{"text": "b"}}\n')
    message = load_error(path)
    assert "nonobj.jsonl" in message and "line 2" in message and kind in message and "not an object" in message


def test_two_objects_on_one_line_is_an_error(tmp_path):
    path = write(tmp_path / "two.jsonl", '{"text": "a"}\n{"text": "b"} {"text": "c"}\n')
    assert "line 2" in load_error(path)


def test_skip_bad_lines_counts_and_lists_them(tmp_path):
    good = [json.dumps({"text": f"doc {i}"}) for i in range(5)]
    lines = [good[0], "{oops", good[1], "[1]", good[2], good[3], "", "not json", good[4]]
    path = write(tmp_path / "skip.jsonl", "\n".join(lines) + "\n")
    loaded = load(path, skip_bad_lines=True)
    assert loaded.frame["text"].to_list() == [f"doc {i}" for i in range(5)]
    report = loaded.report
    assert report.n_bad_lines_skipped == 3
    assert report.bad_line_numbers == (2, 4, 8)
    assert report.n_read == 5
    assert "3 bad lines skipped (lines 2, 4, 8)" in report.summary()


def test_skip_bad_lines_keeps_only_the_first_few_line_numbers(tmp_path):
    lines = ["{bad"] * 15 + ['{"text": "x"}']
    loaded = load(write(tmp_path / "many.jsonl", "\n".join(lines)), skip_bad_lines=True)
    assert loaded.report.n_bad_lines_skipped == 15
    assert loaded.report.bad_line_numbers == tuple(range(1, 11))
    assert "..." in loaded.report.summary()


# ---------------------------------------------------------------- text column


def test_missing_text_column_lists_available_columns(tmp_path):
    path = jsonl(tmp_path / "notext.jsonl", [{"body": "a", "lang": "en"}])
    message = load_error(path)
    assert "notext.jsonl" in message and "'text'" in message
    assert "'body'" in message and "'lang'" in message and "--text-field" in message


def test_text_field_option_renames_and_keeps_a_clashing_text_column(tmp_path):
    path = jsonl(tmp_path / "tf.jsonl", [{"body": "the body", "text": "other"}])
    loaded = load(path, text_field="body")
    assert loaded.frame.columns == ["id", "text", "source_text"]
    assert loaded.frame.row(0) == ("doc-000000", "the body", "other")
    assert "source_text" in loaded.report.summary()


@pytest.mark.parametrize("value, kind", [(5, "number"), (["a"], "array"), ({"a": 1}, "object"), (True, "boolean")])
def test_non_string_text_in_jsonl_names_the_line(tmp_path, value, kind):
    path = jsonl(tmp_path / "nonstr.jsonl", [{"text": "fine"}, {"text": "also fine"}, {"text": value}])
    message = load_error(path)
    assert "nonstr.jsonl" in message and "line 3" in message and kind in message


def test_non_string_text_in_every_line(tmp_path):
    path = jsonl(tmp_path / "ints.jsonl", [{"text": 1}, {"text": 2}])
    message = load_error(path)
    assert "line 1" in message and "number" in message


def test_null_or_missing_text_names_the_line_after_blank_lines(tmp_path):
    path = write(tmp_path / "null.jsonl", '{"text": "a"}\n\n\n{"text": null}\n')
    message = load_error(path)
    assert "null.jsonl" in message and "line 4" in message and "'text'" in message
    path = write(tmp_path / "gap.jsonl", '{"text": "a"}\n\n{"other": 1}\n')
    assert "line 3" in load_error(path)


def test_empty_and_whitespace_texts_are_dropped_and_counted(tmp_path):
    path = jsonl(tmp_path / "e.jsonl", [{"text": "keep"}, {"text": ""}, {"text": " \n\t "}, {"text": "also"}])
    loaded = load(path)
    assert loaded.frame["text"].to_list() == ["keep", "also"]
    assert loaded.frame["id"].to_list() == ["doc-000000", "doc-000003"]  # ids number rows as read
    assert (loaded.report.n_read, loaded.report.n_kept, loaded.report.n_empty_dropped) == (4, 2, 2)
    assert "2 empty dropped" in loaded.report.summary()


@pytest.mark.parametrize("content", ["", "\n\n", '{"text": ""}\n{"text": "  "}\n'])
def test_empty_corpus_is_an_error(tmp_path, content):
    message = load_error(write(tmp_path / "empty.jsonl", content))
    assert "empty.jsonl" in message and "no documents" in message


def test_dedup_keeps_first_and_counts(tmp_path):
    texts = ["a", "b", "a", "c", "b", "a"]
    path = jsonl(tmp_path / "dup.jsonl", [{"text": t, "pos": i} for i, t in enumerate(texts)])
    assert load(path).frame.height == 6  # off by default
    loaded = load(path, dedup=True)
    assert loaded.frame["text"].to_list() == ["a", "b", "c"]
    assert loaded.frame["pos"].to_list() == [0, 1, 3]
    assert loaded.report.n_duplicates_dropped == 3
    assert "3 duplicates dropped" in loaded.report.summary()


# ---------------------------------------------------------------- UTF-8


def test_invalid_utf8_names_byte_offset_and_line(tmp_path):
    data = b'{"text": "ok"}\n{"text": "caf\xe9"}\n'
    path = write(tmp_path / "latin1.jsonl", data)
    message = load_error(path)
    offset = data.index(b"\xe9")
    assert "latin1.jsonl" in message and f"byte offset {offset}" in message and "line 2" in message
    assert "--replace-invalid-utf8" in message


def test_replace_invalid_utf8_counts_only_the_replacements(tmp_path):
    # two bad bytes, a genuine U+FFFD (not counted), one more bad byte
    data = b'{"text": "caf\xff\xfe!"}\n{"text": "real \xef\xbf\xbd"}\n{"text": "x\x80"}\n'
    path = write(tmp_path / "mixed.jsonl", data)
    loaded = load(path, replace_invalid_utf8=True)
    assert loaded.frame["text"].to_list() == ["caf\ufffd\ufffd!", "real \ufffd", "x\ufffd"]
    assert loaded.report.n_invalid_utf8_replaced == 3
    assert "3 invalid UTF-8 sequences replaced" in loaded.report.summary()


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path / "bom.jsonl", b"\xef\xbb\xbf" + '{"text": "é"}\n'.encode())
    assert load(path).frame["text"].to_list() == ["é"]
    bad = write(tmp_path / "bom_bad.jsonl", b'\xef\xbb\xbf{"text": "\xff"}\n')
    assert "byte offset 13" in load_error(bad)  # offsets count from the file start, BOM included


# ---------------------------------------------------------------- ids


def test_id_field_used_cast_to_string_and_removed_from_metadata(tmp_path):
    path = jsonl(tmp_path / "ids.jsonl", [{"doc": 7, "text": "a", "m": 1}, {"doc": 3, "text": "b", "m": 2}])
    loaded = load(path, id_field="doc")
    assert loaded.frame.columns == ["id", "text", "m"]
    assert loaded.frame["id"].to_list() == ["7", "3"]
    assert loaded.report.id_field == "doc"


def test_source_id_column_is_used_when_unique(tmp_path):
    path = jsonl(tmp_path / "own.jsonl", [{"id": "x-1", "text": "a"}, {"id": "x-2", "text": "b"}])
    loaded = load(path)
    assert loaded.frame["id"].to_list() == ["x-1", "x-2"] and loaded.frame.columns == ["id", "text"]
    assert loaded.report.id_field == "id"


def test_source_id_column_with_repeats_is_kept_as_metadata(tmp_path):
    path = jsonl(tmp_path / "rep.jsonl", [{"id": 1, "text": "a"}, {"id": 1, "text": "b"}])
    loaded = load(path)
    assert loaded.frame["id"].to_list() == ["doc-000000", "doc-000001"]
    assert loaded.frame["source_id"].to_list() == [1, 1]
    assert loaded.report.id_field is None and "repeat" in loaded.report.summary()


def test_duplicate_ids_name_the_ids(tmp_path):
    path = jsonl(
        tmp_path / "dupid.jsonl",
        [
            {"k": "a", "text": "1"},
            {"k": "b", "text": "2"},
            {"k": "a", "text": "3"},
            {"k": "zz", "text": "4"},
            {"k": "zz", "text": "5"},
        ],
    )
    message = load_error(path, id_field="k")
    assert "dupid.jsonl" in message and "'a'" in message and "'zz'" in message and "'b'" not in message


def test_duplicate_ids_of_dropped_duplicates_are_fine(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", [{"k": "a", "text": "same"}, {"k": "a", "text": "same"}])
    assert load(path, id_field="k", dedup=True).frame["id"].to_list() == ["a"]


def test_missing_or_null_id_field(tmp_path):
    path = jsonl(tmp_path / "noid.jsonl", [{"text": "a", "uid": 1}, {"text": "b"}])
    message = load_error(path, id_field="key")
    assert "noid.jsonl" in message and "'key'" in message and "'uid'" in message and "--id-field" in message
    message = load_error(path, id_field="uid")
    assert "line 2" in message and "'uid'" in message


def test_row_ids_are_zero_padded_and_widen():
    assert row_ids(3).to_list() == ["doc-000000", "doc-000001", "doc-000002"]
    wide = row_ids(1_000_001)
    assert wide[0] == "doc-0000000" and wide[-1] == "doc-1000000"


def test_bad_arguments_are_config_errors(tmp_path):
    path = jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    with pytest.raises(ConfigError):
        load_corpus(path, fmt="xml")
    with pytest.raises(ConfigError):
        load_corpus(path, id_field="text")
    with pytest.raises(ConfigError):
        load_corpus(write(tmp_path / "t.txt", "a\n"), text_mode="sentences")


# ---------------------------------------------------------------- hash and report


def test_corpus_hash_brute_force_and_sensitivity():
    frame = pl.DataFrame({"id": ["a", "b"], "text": ["xy", "z"], "meta": [1, 2]})
    expected = hashlib.sha256(b"1:a2:xy1:b1:z").hexdigest()
    assert corpus_hash(frame) == expected
    assert corpus_hash(frame.with_columns(pl.lit(9).alias("meta"))) == expected  # metadata does not count
    shifted = pl.DataFrame({"id": ["a", "b"], "text": ["x", "yz"]})
    assert corpus_hash(shifted) != expected
    assert corpus_hash(frame.reverse()) != expected


def test_report_is_plain_data(tmp_path):
    loaded = load(jsonl(tmp_path / "r.jsonl", [{"text": "a"}]))
    assert isinstance(loaded.report, LoadReport)
    data = loaded.report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["n_kept"] == 1 and len(data["content_hash"]) == 64
    assert "\n" not in loaded.report.summary() and "r.jsonl (jsonl): 1 read, 1 kept" in loaded.report.summary()


# ---------------------------------------------------------------- JSON array


def test_json_array(tmp_path):
    path = write(tmp_path / "arr.json", json.dumps([{"text": "a", "n": 1}, {"text": "b", "n": 2}]))
    loaded = load(path)
    assert loaded.report.format == "json"
    assert loaded.frame.rows() == [("doc-000000", "a", 1), ("doc-000001", "b", 2)]


def test_json_array_errors(tmp_path):
    message = load_error(write(tmp_path / "syntax.json", '[{"text": "a"},\n {"text": }]'))
    assert "syntax.json" in message and "line 2" in message and "column" in message
    message = load_error(write(tmp_path / "lines.json", '{"text": "a"}\n{"text": "b"}\n'))
    assert "JSON Lines" in message and "--format jsonl" in message
    message = load_error(write(tmp_path / "obj.json", '{"text": "a"}'))
    assert "obj.json" in message and "array" in message
    message = load_error(write(tmp_path / "elem.json", '[{"text": "a"}, "b"]'))
    assert "record 2" in message and "not an object" in message
    message = load_error(write(tmp_path / "num.json", '[{"text": "a"}, {"text": 3}]'))
    assert "record 2" in message and "number" in message


# ---------------------------------------------------------------- CSV


def test_csv_quoted_multiline_text_string_ids_and_empty_cells(tmp_path):
    content = 'uid,text,n\n007,"hello, world",1\n008,"two\nlines",2\n009,,3\n010,"",4\n'
    loaded = load(write(tmp_path / "c.csv", content), id_field="uid")
    assert loaded.report.format == "csv"
    assert loaded.frame.rows() == [("007", "hello, world", 1), ("008", "two\nlines", 2)]
    assert loaded.report.n_empty_dropped == 2


def test_csv_ragged_row_names_the_line(tmp_path):
    message = load_error(write(tmp_path / "rag.csv", 'text,n\n"a",1\n"b\nc",2\n"d",3,extra\n'))
    assert "rag.csv" in message and "line 5" in message and "3 fields" in message


def test_csv_type_clash_past_inference_window_keeps_everything_as_text(tmp_path):
    rows = "".join(f"doc {i},{i}\n" for i in range(10_050)) + "last,not-a-number\n"
    frame = load(write(tmp_path / "clash.csv", "text,n\n" + rows)).frame
    assert frame.height == 10_051 and frame.schema["n"] == pl.String
    assert frame["n"][-1] == "not-a-number"


def test_csv_missing_text_column_and_empty_file(tmp_path):
    message = load_error(write(tmp_path / "cols.csv", "body,n\nx,1\n"))
    assert "cols.csv" in message and "'body'" in message and "'n'" in message
    assert "empty" in load_error(write(tmp_path / "nothing.csv", ""))


def test_csv_non_string_text_is_read_as_text(tmp_path):
    frame = load(write(tmp_path / "num.csv", "text\n12\n3.5\n")).frame
    assert frame["text"].to_list() == ["12", "3.5"]


# ---------------------------------------------------------------- Parquet


def test_parquet_with_nested_metadata(tmp_path):
    path = tmp_path / "c.parquet"
    pl.DataFrame({"text": ["a", "b", " "], "choices": [["x"], ["y", "z"], []]}).write_parquet(path)
    loaded = load(path)
    assert loaded.report.format == "parquet" and loaded.report.n_empty_dropped == 1
    assert loaded.frame["choices"].to_list() == [["x"], ["y", "z"]]


def test_parquet_errors_name_the_row(tmp_path):
    path = tmp_path / "ints.parquet"
    pl.DataFrame({"text": [None, 4, 5]}).write_parquet(path)
    message = load_error(path)
    assert "ints.parquet" in message and "row 2" in message and "Int64" in message
    path = tmp_path / "nulls.parquet"
    pl.DataFrame({"text": ["a", None]}).write_parquet(path)
    assert "row 2" in load_error(path)
    message = load_error(write(tmp_path / "broken.parquet", b"not parquet at all"))
    assert "broken.parquet" in message and "Parquet" in message


# ---------------------------------------------------------------- plain text


def test_txt_lines_mode(tmp_path):
    loaded = load(write(tmp_path / "t.txt", "first line\r\n\nsecond line\n  \nthird\n"))
    assert loaded.report.format == "txt"
    assert loaded.frame["text"].to_list() == ["first line", "second line", "third"]
    assert loaded.frame["id"].to_list() == ["doc-000000", "doc-000002", "doc-000004"]
    assert loaded.report.n_empty_dropped == 2


def test_txt_paragraphs_mode(tmp_path):
    content = "\n\npara one\nstill one\n\n \n\npara two\n\npara\nthree"
    loaded = load(write(tmp_path / "p.txt", content), text_mode="paragraphs")
    assert loaded.frame["text"].to_list() == ["para one\nstill one", "para two", "para\nthree"]
    assert loaded.report.n_empty_dropped == 0


def test_txt_invalid_utf8_line_number(tmp_path):
    message = load_error(write(tmp_path / "t.txt", b"ok\nok\nbad \xc3(\n"))
    assert "t.txt" in message and "line 3" in message and "byte offset 10" in message


# ---------------------------------------------------------------- Hugging Face datasets


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    return datasets


def test_save_to_disk_dataset_and_dataset_dict(tmp_path, hf_cache):
    ds = hf_cache.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]})
    ds.save_to_disk(str(tmp_path / "one"))
    loaded = load_corpus(tmp_path / "one")
    assert loaded.report.format == "hf-disk"
    assert loaded.frame.rows() == [("doc-000000", "a", 0), ("doc-000001", "b", 1), ("doc-000002", "c", 0)]
    hf_cache.DatasetDict({"train": ds, "test": ds.select([2])}).save_to_disk(str(tmp_path / "dict"))
    assert load_corpus(tmp_path / "dict").frame["text"].to_list() == ["a", "b", "c"]
    assert load_corpus(tmp_path / "dict", split="test").frame["text"].to_list() == ["c"]
    with pytest.raises(DataError, match="available splits: train, test"):
        load_corpus(tmp_path / "dict", split="validation")


def test_local_load_dataset_folders(tmp_path, hf_cache):
    (tmp_path / "jfolder").mkdir()
    part = jsonl(tmp_path / "jfolder" / "part-0.jsonl", [{"text": "one", "k": 1}, {"text": "two", "k": 2}])
    before = digest(part)
    loaded = load_corpus(tmp_path / "jfolder")
    assert digest(part) == before and [p.name for p in (tmp_path / "jfolder").iterdir()] == ["part-0.jsonl"]
    assert loaded.report.format == "hf"
    assert loaded.frame.select("text", "k").rows() == [("one", 1), ("two", 2)]
    (tmp_path / "cfolder").mkdir()
    write(tmp_path / "cfolder" / "data.csv", "body,n\nalpha,1\nbeta,2\n")
    assert load_corpus(tmp_path / "cfolder", text_field="body").frame["text"].to_list() == ["alpha", "beta"]
    with pytest.raises(DataError, match="split"):
        load_corpus(tmp_path / "cfolder", text_field="body", split="nope")


def test_hub_id_offline_is_a_clear_error(hf_cache):
    with pytest.raises(DataError) as info:
        load_corpus("someone-who-does-not-exist/no-such-dataset-xyz")
    message = str(info.value)
    assert "no-such-dataset-xyz" in message and "Offline" in message and ".jsonl" in message


# ---------------------------------------------------------------- format detection


def test_detect_format(tmp_path):
    for name, fmt in [
        ("a.jsonl", "jsonl"),
        ("a.NDJSON", "jsonl"),
        ("a.json", "json"),
        ("a.csv", "csv"),
        ("a.parquet", "parquet"),
        ("a.txt", "txt"),
        ("a.tsv", "tsv"),
        ("a.jsonl.gz", "jsonl"),
        ("a.CSV.GZ", "csv"),
    ]:
        assert detect_format(write(tmp_path / name, "")) == fmt
    (tmp_path / "folder").mkdir()
    assert detect_format(tmp_path / "folder") == "hf"
    assert detect_format("org/some-dataset") == "hf"
    with pytest.raises(DataError, match="file not found"):
        detect_format(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="--format"):
        detect_format(write(tmp_path / "data.xyz", "x"))
    for name in ("data.gz", "data.parquet.gz"):
        with pytest.raises(DataError, match="corpus.jsonl.gz"):
            detect_format(write(tmp_path / name, b"x"))


def test_gzipped_jsonl_equals_plain_and_is_not_modified(tmp_path):
    import gzip

    records = [{"id": f"a{i}", "text": f"doc number {i}", "kind": "x"} for i in range(5)]
    plain = jsonl(tmp_path / "c.jsonl", records)
    packed = write(tmp_path / "c.jsonl.gz", gzip.compress(plain.read_bytes()))
    before = digest(packed)
    a, b = load(plain, id_field="id"), load(packed, id_field="id")
    assert b.frame.equals(a.frame) and b.report.format == "jsonl" and digest(packed) == before


def test_gzip_errors_name_the_problem(tmp_path):
    import gzip

    data = b'{"text": "ok"}\n{"text": "caf\xe9"}\n'
    message = load_error(write(tmp_path / "bad.jsonl.gz", gzip.compress(data)))
    assert "bad.jsonl.gz (decompressed)" in message and f"byte offset {data.index(bytes([0xE9]))}" in message
    assert "line 2" in message
    message = load_error(write(tmp_path / "cut.jsonl.gz", gzip.compress(b'{"text": "a"}\n' * 50)[:20]))
    assert "cut.jsonl.gz: not a complete gzip file" in message
    assert "line 2" in load_error(write(tmp_path / "j.jsonl.gz", gzip.compress(b'{"text": "a"}\n{oops\n')))


def test_tsv_and_gzipped_tsv(tmp_path):
    import gzip

    content = "uid\ttext\n007\thello, world\n008\tsecond doc\n"
    loaded = load(write(tmp_path / "c.tsv", content), id_field="uid")
    assert loaded.report.format == "tsv" and loaded.frame.rows() == [("007", "hello, world"), ("008", "second doc")]
    packed = load(write(tmp_path / "c.tsv.gz", gzip.compress(content.encode())), id_field="uid")
    assert packed.frame.equals(loaded.frame)
    message = load_error(write(tmp_path / "r.tsv", "uid\ttext\n1\ta\tb\n"), id_field="uid")
    assert "r.tsv: cannot parse as CSV: line 2 has 3 fields but the header has 2" in message


def test_explicit_format_overrides_suffix(tmp_path):
    path = write(tmp_path / "corpus.log", '{"text": "a"}\n')
    assert load(path, fmt="jsonl").frame["text"].to_list() == ["a"]
    assert load(path, fmt="txt").frame["text"].to_list() == ['{"text": "a"}']


# ---------------------------------------------------------------- records round trip


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_records_round_trip_keeps_every_field(tmp_path, suffix):
    frame = pl.DataFrame(
        {
            "id": ["q1", "q2"],
            "text": ["ünïcode\nwith newline", 'plain "quoted"'],
            "score": [0.1 + 0.2, -1e-300],
            "n": [1, 2],
            "ok": [True, False],
            "choices": [["a", "b", "c"], ["d"]],
            "info": [{"k": 1, "s": "x"}, {"k": 2, "s": "y"}],
        }
    )
    path = tmp_path / f"records{suffix}"
    write_records(frame, path)
    assert read_records(path).equals(frame)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_jsonl_records_are_one_object_per_line(tmp_path):
    path = tmp_path / "scored.jsonl"
    write_records(pl.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "score": [1.5, float("nan")]}), path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "a", "text": "x", "score": 1.5},
        {"id": "b", "text": "y", "score": None},
    ]


def test_write_records_replaces_atomically_and_checks_suffix(tmp_path):
    path = tmp_path / "out.jsonl"
    write_records(pl.DataFrame({"text": ["old"]}), path)
    write_records(pl.DataFrame({"text": ["new"]}), path)
    assert read_records(path)["text"].to_list() == ["new"]
    with pytest.raises(DataError, match=r"\.jsonl or \.parquet"):
        write_records(pl.DataFrame({"text": ["x"]}), tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_read_records_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_records(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match=r"records\.csv.*\.jsonl or \.parquet"):
        read_records(write(tmp_path / "records.csv", "a\n"))
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2 is not valid JSON"):
        read_records(write(tmp_path / "bad.jsonl", '{"a": 1}\n{"a": \n'))
    with pytest.raises(DataError, match=r"bytes\.jsonl: invalid UTF-8 at byte offset 7 \(line 1\)"):
        read_records(write(tmp_path / "bytes.jsonl", b'{"a": "\xff"}\n'))
    assert read_records(write(tmp_path / "empty.jsonl", "")).shape == (0, 0)


def test_loaded_corpus_round_trips_through_records(tmp_path):
    loaded = load(
        jsonl(
            tmp_path / "src.jsonl",
            [{"text": "a", "task": "t", "choices": ["x", "y"]}, {"text": "b", "task": "u", "choices": []}],
        )
    )
    for suffix in (".jsonl", ".parquet"):
        out = tmp_path / f"norm{suffix}"
        write_records(loaded.frame, out)
        again = load_corpus(out) if suffix == ".jsonl" else load_corpus(out, fmt="parquet")
        assert again.frame.equals(loaded.frame)
        assert again.report.content_hash == loaded.report.content_hash


@pytest.mark.parametrize(
    "mode, texts",
    [
        ("lines", ["first line of a", "second line of a", "para one of b", "still para one", "para two of b"]),
        ("paragraphs", ["first line of a\nsecond line of a", "para one of b\nstill para one", "para two of b"]),
        ("file", ["first line of a\nsecond line of a", "para one of b\nstill para one\n\npara two of b"]),
    ],
)
def test_a_folder_of_text_files_follows_the_text_mode_and_names_each_file(tmp_path, mode, texts):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("first line of a\nsecond line of a\n")
    (folder / "sub" / "b.txt").write_text("para one of b\nstill para one\n\npara two of b\n")
    (folder / "empty.txt").write_text("")
    (folder / ".hidden.txt").write_text("not read")
    frame = load_corpus(folder, text_mode=mode).frame
    assert frame["text"].to_list() == texts
    a = sum("of a" in t for t in texts)
    assert frame["source_file"].to_list() == ["a.txt"] * a + ["sub/b.txt"] * (len(texts) - a)
