"""Hostile and damaged input (issue 11, input side): gzip bombs, missing paths and symlink loops,
duplicate ids, file-system errors in the CLI, damaged workspace JSON, atomic writes and path-like ids.

Each test here failed before the change it covers. Memory use of a bomb is measured in
bench/gzip_bomb.py, not here (no timings or memory figures in tests)."""

import errno
import gzip
import json
import os
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from delt_engine import fileio
from delt_engine.cli import describe_os_error, main
from delt_engine.data import formats as corpus_formats
from delt_engine.data.corpus import MAX_DECOMPRESSED_ENV, detect_format, load_corpus, write_records
from delt_engine.data.formats import decompression_cap, looks_like_hub_id, parse_size
from delt_engine.errors import ConfigError, DataError
from delt_engine.fileio import read_json, write_json
from delt_engine.jobs.protocol import refresh_status
from delt_engine.organize.ordering import order
from delt_engine.organize.selection import select
from delt_engine.workspace.layout import Workspace, check_id
from tests.conftest import ROOT


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "delt_engine", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def one_error_line(result) -> str:
    """The single ``error:`` line of a failed CLI call (exit 2, no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ---------------------------------------------------------------- decompression cap

LINE = b'{"text": "the same short document, again and again"}\n'


def bomb(path, n_bytes):
    """A .jsonl.gz file that expands to ``n_bytes`` of valid JSON Lines (whole lines, <= n_bytes)."""
    with gzip.open(path, "wb", compresslevel=9) as fh:
        for _ in range(n_bytes // len(LINE)):
            fh.write(LINE)
    return path


def test_gzip_past_the_cap_is_refused_naming_file_cap_and_fix(tmp_path):
    path = bomb(tmp_path / "bomb.jsonl.gz", 5_000_000)
    before = path.read_bytes()
    assert len(before) < 100_000  # a bomb: small on disk
    with pytest.raises(DataError) as info:
        load_corpus(path, max_decompressed_bytes=1_000_000)
    message = str(info.value)
    assert str(path) in message and "1 MB" in message and "1,000,000 bytes" in message
    assert MAX_DECOMPRESSED_ENV in message and "--max-decompressed-bytes" in message
    assert path.read_bytes() == before
    assert load_corpus(path, max_decompressed_bytes="5MB").frame.height == 5_000_000 // len(LINE)


def test_the_cap_is_exact_at_the_boundary(tmp_path):
    path = bomb(tmp_path / "c.jsonl.gz", 10 * len(LINE))
    size = 10 * len(LINE)
    assert load_corpus(path, max_decompressed_bytes=size).frame.height == 10
    with pytest.raises(DataError, match="decompresses to more than"):
        load_corpus(path, max_decompressed_bytes=size - 1)


def test_the_cap_comes_from_the_environment(tmp_path, monkeypatch):
    path = bomb(tmp_path / "c.jsonl.gz", 200_000)
    monkeypatch.setenv(MAX_DECOMPRESSED_ENV, "100kB")
    with pytest.raises(DataError, match="100 kB"):
        load_corpus(path)
    monkeypatch.setenv(MAX_DECOMPRESSED_ENV, "1MiB")
    assert load_corpus(path).frame.height == 200_000 // len(LINE)
    assert load_corpus(path, max_decompressed_bytes=10**6).frame.height > 0  # the argument wins
    monkeypatch.setenv(MAX_DECOMPRESSED_ENV, "lots")
    with pytest.raises(ConfigError, match=MAX_DECOMPRESSED_ENV):
        load_corpus(path)
    monkeypatch.delenv(MAX_DECOMPRESSED_ENV)
    assert decompression_cap() == corpus_formats.DEFAULT_MAX_DECOMPRESSED_BYTES == 10**9


def test_parse_size():
    assert parse_size("1500", "x") == 1500 and parse_size(7, "x") == 7
    assert parse_size("2GB", "x") == 2 * 10**9 and parse_size("4 GiB", "x") == 4 * 2**30
    assert parse_size("0.5g", "x") == 5 * 10**8 and parse_size("100kb", "x") == 100_000
    for bad in ("", "GB", "-1", "0", "1e9", "two", "5 parsecs", 0):
        with pytest.raises(ConfigError):
            parse_size(bad, "x")
    with pytest.raises(ConfigError, match="max_decompressed_bytes"):
        load_corpus("whatever.jsonl", max_decompressed_bytes="big")


def test_cli_import_cap_option_and_variable(tmp_path):
    path = bomb(tmp_path / "bomb.jsonl.gz", 3_000_000)
    out = tmp_path / "out.jsonl"
    line = one_error_line(cli("import", "--input", path, "--output", out, "--max-decompressed-bytes", "1MB"))
    assert "bomb.jsonl.gz" in line and "1 MB" in line and MAX_DECOMPRESSED_ENV in line
    env = {**os.environ, MAX_DECOMPRESSED_ENV: "2000000"}
    assert "2 MB" in one_error_line(cli("import", "--input", path, "--output", out, env=env))
    assert not out.exists()
    assert cli("import", "--input", path, "--output", out, "--max-decompressed-bytes", "3MB").returncode == 0


# ---------------------------------------------------------------- missing paths, links, Hub ids


@pytest.fixture
def no_hub(monkeypatch):
    """Fail the test if anything reaches datasets.load_dataset (the Hub detour)."""

    def refuse(source, split):
        pytest.fail(f"{source!r} was sent to datasets.load_dataset")

    monkeypatch.setattr(corpus_formats, "read_hf", refuse)


def test_missing_path_without_suffix_is_missing_not_a_hub_id(tmp_path, monkeypatch, no_hub):
    with pytest.raises(DataError, match="file not found"):
        detect_format(tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"corpus: file not found \(relative to"):
        load_corpus("corpus")
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="file not found"):
        load_corpus("data/corpus")  # owner/name shape, but 'data' is a local folder: a path
    with pytest.raises(DataError, match="file not found"):
        load_corpus("./missing", fmt="hf")  # even with the format forced, only a Hub id goes to the Hub


def test_symlink_loops_and_broken_links_are_reported_at_once(tmp_path, no_hub):
    loop, named_loop = tmp_path / "loop", tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    named_loop.symlink_to(named_loop)
    for source in (loop, named_loop, loop / "inside.jsonl", str(loop)):
        with pytest.raises(DataError, match="symbolic link loop"):
            load_corpus(source)
    broken = tmp_path / "broken.jsonl"
    broken.symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(DataError, match="broken symbolic link to .*gone.jsonl"):
        load_corpus(broken)
    with pytest.raises(DataError, match="symbolic link loop"):
        load_corpus(loop, fmt="jsonl")


def test_a_file_in_the_middle_of_a_path_and_a_folder_given_as_a_file(tmp_path, no_hub):
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    with pytest.raises(DataError, match="a part of this path is a file"):
        load_corpus(src / "x.jsonl")
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(DataError, match="is a folder, not a file"):
        load_corpus(tmp_path / "d.jsonl", fmt="jsonl")


@pytest.mark.parametrize(
    "source, expected",
    [
        ("owner/name", True),
        ("HuggingFaceFW/fineweb-edu", True),
        ("bigcode/the-stack-v1.2", True),
        ("owner/name.jsonl", False),
        ("owner/name.xyz", False),
        ("./owner/name", False),
        ("/abs/name", False),
        ("~/name", False),
        ("a/b/c", False),
        ("name", False),
        ("owner/", False),
        (".hidden/name", False),
        ("owner//name", False),
        ("owner/-name", False),
    ],
)
def test_looks_like_hub_id(source, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_like_hub_id(source) is expected


def test_cli_import_of_a_missing_path_is_one_line(tmp_path):
    line = one_error_line(cli("import", "--input", tmp_path / "nothing-here", "--output", tmp_path / "o.jsonl"))
    assert "nothing-here: file not found" in line and "datasets" not in line


# ---------------------------------------------------------------- duplicate ids in select / order

DUPLICATED = pl.DataFrame(
    {"id": ["a", "b", "a", "c", "b", "d"], "text": list("uvwxyz"), "score": [0.1, 0.5, 0.3, 0.9, 0.2, 0.4]}
)


def test_select_and_order_refuse_repeated_ids_naming_them():
    with pytest.raises(DataError, match=r"2 id\(s\) appear more than once: 'a', 'b'; .*to select"):
        select(DUPLICATED, "top-k", k=2)
    for method in ("shuffle", "sorting", "folding"):
        with pytest.raises(DataError, match=r"'a', 'b'; every sample needs a unique id to order"):
            order(DUPLICATED, method)
    unique = DUPLICATED.with_columns(pl.Series("id", list("abcdef")))
    assert select(unique, "top-k", k=2)["id"].to_list() == ["b", "d"]
    assert order(DUPLICATED.drop("id"), "sorting").height == 6  # no id column: nothing to check


def test_repeated_ids_message_lists_a_few_and_counts_the_rest():
    frame = pl.DataFrame({"id": [f"x{i % 9}" for i in range(18)], "score": [float(i) for i in range(18)]})
    with pytest.raises(DataError, match=r"9 id\(s\) .*'x4' and 4 more"):
        select(frame, "top-r", ratio=0.5)


@pytest.mark.parametrize("command", [["select", "--method", "top-k", "--k", "2"], ["order", "--method", "folding"]])
def test_cli_select_and_order_refuse_repeated_ids(tmp_path, command):
    src = tmp_path / "scored.jsonl"
    write_records(DUPLICATED, src)
    out = tmp_path / "out.jsonl"
    line = one_error_line(cli(command[0], "--input", src, "--output", out, *command[1:]))
    assert str(src) in line and "'a', 'b'" in line and "new ids" in line
    assert not out.exists()


# ---------------------------------------------------------------- file-system errors in the CLI


def test_cli_output_that_is_an_existing_folder(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    (tmp_path / "out.parquet").mkdir()
    line = one_error_line(cli("import", "--input", src, "--output", tmp_path / "out.parquet"))
    assert "out.parquet: is an existing folder" in line
    line = one_error_line(cli("order", "--input", src, "--method", "shuffle", "--output", tmp_path / "out.parquet"))
    assert "out.parquet: is an existing folder" in line
    with pytest.raises(DataError, match="is an existing folder"):  # the engine's own writer too
        write_records(pl.DataFrame({"id": ["a"], "text": ["a"]}), tmp_path / "out.parquet")
    assert list((tmp_path / "out.parquet").iterdir()) == []


def _unwritable_folder(tmp_path):
    """A folder this process cannot create files in (root ignores modes: then a read-only system folder)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    for candidate in (folder, "/sys", "/proc"):
        try:
            open(os.path.join(candidate, ".probe"), "wb").close()
            os.unlink(os.path.join(candidate, ".probe"))
        except OSError:
            return candidate
    pytest.skip("no unwritable folder on this machine")


def test_cli_unwritable_output(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    folder = _unwritable_folder(tmp_path)
    try:
        out = os.path.join(folder, "out.jsonl")
        line = one_error_line(cli("import", "--input", src, "--output", out))
        assert out in line and ("permission denied" in line or "no such file" in line or "read-only" in line)
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert list((tmp_path / "locked").iterdir()) == []


def test_cli_output_under_a_file_says_the_path_holds_a_file(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    for out in (src / "out.jsonl", src / "deeper" / "out.jsonl"):
        line = one_error_line(cli("import", "--input", src, "--output", out))
        assert line == f"error: {out}: a part of this path is a file, not a folder; check the path"


def test_cli_full_disk_names_the_output_and_leaves_no_temp_file(tmp_path, monkeypatch, capsys):
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    real_fsync = os.fsync

    def full_disk(fd):
        if not os.path.isdir(f"/proc/self/fd/{fd}") and os.fstat(fd).st_size:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", full_disk)
    out = tmp_path / "sub" / "out.jsonl"
    assert main(["import", "--input", str(src), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {out}: no space left on the device; free some space or write somewhere else"
    assert list((tmp_path / "sub").iterdir()) == []


def test_cli_spec_that_is_a_folder_or_not_utf8(tmp_path):
    (tmp_path / "spec").mkdir()
    line = one_error_line(cli("compare", "--spec", tmp_path / "spec", "--workspace", tmp_path / "ws"))
    assert f"spec file {tmp_path / 'spec'} is a folder" in line
    latin = tmp_path / "spec.json"
    latin.write_bytes('{"name": "caf\u00e9"}'.encode("latin-1"))
    line = one_error_line(cli("compare", "--spec", latin, "--workspace", tmp_path / "ws"))
    assert "spec.json is not UTF-8 text (invalid byte at offset 13)" in line


def test_cli_turns_any_os_or_decode_error_into_one_line(monkeypatch, capsys):
    from delt_engine.cli import data

    def fails(exc):
        def cmd(args):
            raise exc

        return cmd

    for exc, expected in [
        (PermissionError(errno.EACCES, "Permission denied", "/x/y.jsonl"), "/x/y.jsonl: permission denied"),
        (OSError(errno.EIO, "Input/output error", "/dev/sdz"), "/dev/sdz: Input/output error; check the path"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), "not UTF-8 text (bad at byte offset 0)"),
    ]:
        monkeypatch.setattr(data, "cmd_demo_data", fails(exc))
        assert main(["demo-data", "--out", "x"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and expected in err


def test_describe_os_error_names_the_destination_of_a_rename():
    exc = IsADirectoryError(errno.EISDIR, "Is a directory", "/w/.out.parquet.tmp", None, "/w/out.parquet")
    assert (
        describe_os_error(exc) == "/w/out.parquet: is a folder, not a file; give a file path (or remove the "
        "folder if it is in the way)"
    )


# ---------------------------------------------------------------- damaged workspace JSON


def _run(ws, run_id):
    d = ws.runs / run_id
    d.mkdir(parents=True)
    write_json(d / "config.json", {"model": "tiny-test", "seed": 0, "provenance": {"arm": "shuffle", "seed": 0}})
    write_json(d / "status.json", {"state": "done"})
    return d


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"state": "do', "not valid JSON"),
        (b'{"state": "\xe9"}', "not UTF-8 text (byte offset 11)"),
    ],
)
def test_read_json_names_the_damaged_file_and_the_fix(tmp_path, content, problem):
    path = tmp_path / "status.json"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_json(path)
    assert str(info.value).startswith(f"{path}: damaged file: {problem}") and "delete it" in str(info.value)
    assert read_json(tmp_path / "absent.json", default=7) == 7


def test_empty_status_json_is_a_damaged_entry_never_an_exception(tmp_path):
    ws = Workspace(tmp_path)
    _run(ws, "run-a")
    d = _run(ws, "run-b")
    (d / "status.json").write_bytes(b"")
    status = refresh_status(d)
    assert status["state"] == "unknown" and str(d / "status.json") in status["error"] and status["damaged"]
    assert (d / "status.json").read_bytes() == b""  # never rewritten
    infos = {i.id: i for i in ws.list_runs()}
    assert infos["run-a"].state == "done" and infos["run-b"].state == "unknown"
    assert "empty" in infos["run-b"].error
    (d / "status.json").write_text("[1, 2]")
    assert refresh_status(d)["state"] == "unknown"


def _comparison(ws, cmp_id, runs):
    write_json(ws.comparisons / cmp_id / "comparison.json", {"id": cmp_id, "arms": ["shuffle"], "runs": runs})
    return ws.comparisons / cmp_id / "comparison.json"


def test_cli_runs_report_on_a_damaged_comparison_is_one_line(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _run(ws, "run-a")
    path = _comparison(ws, "cmp-1", [{"id": "run-a", "arm": "shuffle", "seed": 0}])
    path.write_text('{"id": "cmp-1", "runs": [')
    line = one_error_line(cli("runs", "report", "cmp-1", "--workspace", ws.root))
    assert f"{path}: damaged file: not valid JSON" in line
    path.write_text("")
    assert f"{path}: damaged file: empty" in one_error_line(
        cli("runs", "export", "cmp-1", "--out", tmp_path / "x", "--workspace", ws.root)
    )


def test_damaged_comparisons_do_not_break_listing(tmp_path):
    ws = Workspace(tmp_path)
    _comparison(ws, "cmp-good", [])
    (ws.comparisons / "cmp-bad").mkdir()
    (ws.comparisons / "cmp-bad" / "comparison.json").write_text("{oops")
    assert [c["id"] for c in ws.list_comparisons()] == ["cmp-good"]
    listed = ws.list_comparisons(include_damaged=True)
    assert listed[0]["id"] == "cmp-bad" and "not valid JSON" in listed[0]["damaged"]
    with pytest.raises(DataError, match=r"comparison 'cmp-x' not found .*\(known: cmp-good\)"):
        ws.load_comparison("cmp-x")


# ---------------------------------------------------------------- ids that would become paths


@pytest.mark.parametrize("bad", ["..", ".", "../x", "a/b", "/tmp", "", "-rf", ".hidden", "a b", "x" * 129, "a\0b"])
def test_run_and_comparison_ids_must_be_plain_names(tmp_path, bad):
    ws = Workspace(tmp_path)
    _run(ws, "run-a")
    with pytest.raises(DataError):
        ws.run_dir(bad)
    with pytest.raises(DataError, match="comparison id"):
        ws.comparison_dir(bad)
    with pytest.raises(DataError):
        check_id(bad, "dataset name")


def test_run_dir_accepts_an_id_a_folder_inside_runs_or_a_run_folder(tmp_path, monkeypatch):
    ws = Workspace(tmp_path / "ws")
    d = _run(ws, "run-a")
    assert ws.run_dir("run-a") == d and ws.run_dir(d) == d and ws.run_dir(str(d.resolve())) == d
    monkeypatch.chdir(tmp_path)
    assert ws.run_dir("ws/runs/run-a") == d
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DataError, match="nor a run folder"):  # a folder that is no run: nothing is written there
        ws.run_dir(tmp_path / "elsewhere")
    write_json(tmp_path / "elsewhere" / "config.json", {})  # a run folder outside (train --run-dir DIR)
    assert ws.run_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere"
    with pytest.raises(DataError, match="is not valid"):
        ws.run_dir("ws/runs/..")


def test_cli_runs_cancel_of_a_path_writes_nothing_anywhere(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _run(ws, "run-a")
    other = tmp_path / "other"
    other.mkdir()
    for target in ("..", ".", "../..", other, ws.root):
        line = one_error_line(cli("runs", "cancel", target, "--workspace", ws.root, "--grace", 0))
        assert "run id" in line or "nor a run folder" in line
    assert sorted(p.name for p in ws.root.iterdir()) == ["runs"] and list(other.iterdir()) == []
    assert sorted(p.name for p in ws.runs.iterdir()) == ["run-a"]


@pytest.mark.parametrize(
    "run",
    [
        {"id": "../../evil", "arm": "a", "seed": 0},
        {"id": "/etc", "arm": "a", "seed": 0},
        {"arm": "a", "seed": 0},
        {"id": "run-a", "arm": "a", "seed": "zero"},
        "run-a",
    ],
)
def test_run_ids_in_a_manifest_are_validated(tmp_path, run):
    ws = Workspace(tmp_path / "ws")
    _run(ws, "run-a")
    path = _comparison(ws, "cmp-1", [run])
    with pytest.raises(DataError, match=f"{path}: damaged manifest: run 1"):
        ws.load_comparison("cmp-1")
    line = one_error_line(cli("runs", "launch", "--comparison", "cmp-1", "--workspace", ws.root))
    assert "damaged manifest" in line


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        fileio.os,
        "fsync",
        lambda fd: (
            events.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file"),
            real_fsync(fd),
        )[1],
    )
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))[1])
    fileio.atomic_write_bytes(tmp_path / "a.json", b"{}")
    assert events == ["fsync file", "rename", "fsync folder"]
    assert (tmp_path / "a.json").read_bytes() == b"{}" and os.listdir(tmp_path) == ["a.json"]


def test_fileio_never_touches_the_umask_and_new_files_follow_it(tmp_path):
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        os.umask(0o027)
        calls = []
        real = os.umask
        os.umask = lambda mask: (calls.append(mask), real(mask))[1]
        from delt_engine import fileio
        fileio.atomic_write_bytes(sys.argv[1], b"x")
        print(calls, oct(os.stat(sys.argv[1]).st_mode & 0o777))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "f.txt")], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "0o640"]


# ---------------------------------------------------------------- found by the session-6 audit


def test_cli_score_refuses_to_overwrite_its_input_or_target(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [{"id": str(i), "text": f"text {i}"} for i in range(5)])
    before = src.read_bytes()
    line = one_error_line(cli("score", "--input", src, "--output", src, "--method", "length"))
    assert "the output would overwrite the input" in line and str(src) in line
    target = write_jsonl(tmp_path / "t.jsonl", [{"text": "a target"}])
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    line = one_error_line(cli("score", "--input", src, "--output", link, "--method", "lqs", "--target", target))
    assert "would overwrite the input" in line
    assert src.read_bytes() == before and target.read_text() == '{"text": "a target"}\n'


def test_cli_score_unwritable_output_fails_before_scoring(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    folder = _unwritable_folder(tmp_path)
    try:
        result = cli("score", "--input", src, "--output", os.path.join(folder, "s.jsonl"), "--method", "length")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "tokenizer" not in result.stderr and "length:" not in result.stderr  # no work was done first
    finally:
        (tmp_path / "locked").chmod(0o700)


@pytest.mark.parametrize(
    "args,words",
    [
        (["--method", "random", "--seed", "-3"], "seed=-3 must be a whole number >= 0"),
        (["--method", "length", "--max-length", "0"], "max_length=0 must be a whole number >= 2"),
        (["--method", "length", "--set", "foo=1"], "unknown length option(s) foo; valid options: vocab_size"),
        (["--method", "compression", "--set", "bogus=1"], "unknown compression option(s) bogus; valid options: none"),
        (["--method", "perplexity", "--model", "no/such/model/dir"], "no such folder"),
    ],
)
def test_cli_score_bad_settings_are_one_line_before_any_work(tmp_path, args, words):
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "some text here"}])
    line = one_error_line(cli("score", "--input", src, "--output", tmp_path / "s.jsonl", *args))
    assert words in line


def test_spec_scorer_options_and_model_are_checked_before_any_work(tmp_path):
    from delt_engine.experiments.prepare import prepare_comparison
    from delt_engine.experiments.spec import parse_spec

    with pytest.raises(ConfigError, match=r"unknown perplexity option\(s\) bogus"):
        parse_spec(
            {"corpus": "demo", "orderings": ["shuffle"], "scorer": {"method": "perplexity", "options": {"bogus": 1}}}
        )
    ws = Workspace(tmp_path / "ws")
    spec = {"corpus": "demo", "orderings": ["shuffle"], "train": {"model": "cpu-huge"}}
    with pytest.raises(ConfigError, match="model 'cpu-huge' is neither a preset .* nor a model folder"):
        prepare_comparison(spec, ws)
    assert not list((tmp_path / "ws").rglob("comparison.json"))


def test_a_folder_with_one_bad_file_names_that_file(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("first document\n")
    (folder / "b.txt").write_bytes(b"caf\xe9 \x00\x01\x02 binary\n")
    with pytest.raises(DataError) as info:
        load_corpus(folder)
    message = str(info.value)
    assert str(folder / "b.txt") in message and "invalid UTF-8 at byte offset 3" in message and "Hub" not in message


@pytest.mark.parametrize(
    "content,words",
    [
        (
            b'{"text": "fine"}\n{"text": "unterminated\n',
            "line 2 is not valid JSON (Unterminated string starting at column 10)",
        ),
        (b'{"text": "a"}\n{"text" "b"}\n', "line 2 is not valid JSON (Expecting ':' delimiter at column 9)"),
    ],
)
def test_json_errors_read_as_words_with_their_column(tmp_path, content, words):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_corpus(path)
    assert words in str(info.value) and " at at " not in str(info.value)
    assert "`delt import --skip-bad-lines`" in str(info.value)


@pytest.mark.parametrize(
    "content,words",
    [
        ("id,text\nd0,hello world\nd1\nd2,bye\n", "line 3 has 1 fields but the header has 2"),
        ('id,text\nd0,fine\nd1,"never closed\nd2,bye\n', "line 3 opens a quote that is never closed"),
    ],
)
def test_csv_short_rows_and_open_quotes_are_named_by_line(tmp_path, content, words):
    path = tmp_path / "c.csv"
    path.write_text(content)
    with pytest.raises(DataError, match="cannot parse as CSV") as info:
        load_corpus(path)
    assert words in str(info.value)
    path.write_text("id,text\nd0,hello\nd1,\nd2,bye\n")  # an empty cell is an empty text, dropped and counted
    assert load_corpus(path).frame["id"].to_list() == ["d0", "d2"]


def test_cli_options_that_do_not_apply_are_refused_not_ignored(tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", [{"id": f"d{i}", "text": f"t {i}", "score": float(i)} for i in range(6)])
    out = tmp_path / "o.jsonl"
    line = one_error_line(cli("order", "--input", src, "--output", out, "--method", "sorting", "--layers", "5"))
    assert "--layers applies to folding, zigzag, not to --method sorting" in line
    line = one_error_line(cli("dedup", "--input", src, "--output", out, "--mode", "exact", "--threshold", "0.5"))
    assert "--threshold does not apply to --mode exact" in line
    line = one_error_line(cli("dedup", "--input", src, "--output", out, "--mode", "edit", "--ngram", "3"))
    assert "--ngram does not apply to --mode edit" in line
    assert not out.exists()


def test_cli_score_column_errors_name_the_file_and_a_bad_value(tmp_path):
    rows = [{"id": f"d{i}", "text": f"t {i}", "score": float(i)} for i in range(6)]
    rows[4]["score"] = "high"
    src = write_jsonl(tmp_path / "s.jsonl", rows)
    for command, extra in (("select", ["--method", "top-k", "--k", "2"]), ("order", ["--method", "sorting"])):
        line = one_error_line(cli(command, "--input", src, "--output", tmp_path / "o.jsonl", *extra))
        assert line.startswith(f"error: {src}: score field 'score' holds String values (id d4: 'high')"), line


def test_cli_runs_commands_refuse_a_missing_or_file_workspace(tmp_path):
    line = one_error_line(cli("runs", "list", "--workspace", tmp_path / "nope"))
    assert "does not exist" in line and not (tmp_path / "nope").exists()
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    assert "is a file, not a workspace folder" in one_error_line(cli("runs", "list", "--workspace", src))


def test_a_value_that_is_not_a_number_is_called_so():
    from delt_engine.training.config import RunConfig

    with pytest.raises(ConfigError, match="lr='abc' is not a number"):
        RunConfig.from_dict({"input": "x.jsonl", "lr": "abc"})
    with pytest.raises(ConfigError, match="lr=-1 is out of range"):
        RunConfig.from_dict({"input": "x.jsonl", "lr": -1})


def test_texts_with_nothing_visible_are_dropped_and_counted(tmp_path):
    path = tmp_path / "c.jsonl"
    texts = ["\x00" * 2000, " \t ", "\u200b\u200b", "a real text", "👩\u200d💻", "a\x00b"]
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    loaded = load_corpus(path)
    assert loaded.frame["id"].to_list() == ["d3", "d4", "d5"] and loaded.report.n_empty_dropped == 3


def test_cli_output_into_a_closed_pipe_stops_quietly(tmp_path):
    """`delt runs report | head` : the reader leaves early; no "error: Broken pipe" line, no traceback."""
    script = textwrap.dedent(
        """
        import sys
        from delt_engine import cli
        from delt_engine.cli import runs

        def flood(args):
            for i in range(200000):
                print("line", i)
            return 0

        runs.cmd_list = flood
        sys.exit(cli.main(["runs", "list", "--workspace", sys.argv[1]]))
        """
    )
    (tmp_path / "ws" / "runs").mkdir(parents=True)
    done = subprocess.run(
        f"{sys.executable} -c '{script}' {tmp_path / 'ws'} | head -n 2",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout == "line 0\nline 1\n" and done.stderr == "", done.stderr


def test_a_folder_source_is_not_walked_past_a_sane_size(tmp_path, monkeypatch):
    """`import --input /` (or a home folder) fails fast with the fix, instead of walking a whole file system."""
    monkeypatch.setattr(corpus_formats, "MAX_FOLDER_ENTRIES", 5)
    for i in range(8):
        (tmp_path / f"d{i}.txt").write_text(f"document {i}\n")
    with pytest.raises(DataError, match="holds more than 5 files and folders; give the folder that holds the data"):
        load_corpus(tmp_path)
    monkeypatch.setattr(corpus_formats, "MAX_FOLDER_ENTRIES", 100)
    assert load_corpus(tmp_path).frame.height == 8
