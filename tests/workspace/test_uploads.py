"""Uploaded files: each stored under a unique, plain name inside <workspace>/cache/uploads, atomically."""

from __future__ import annotations

import os

import pytest

from delt_engine.workspace.datasets import save_upload


@pytest.mark.parametrize(
    "name, ends",
    [
        ("..", "-upload"),
        (".", "-upload"),
        ("/", "-upload"),
        ("", "-upload"),
        ("../../etc/passwd", "-passwd"),
        ("..\\..\\evil.jsonl", "-evil.jsonl"),
        (".jsonl", "-upload.jsonl"),
        ("my corpus (1).jsonl.gz", "-my-corpus-1-.jsonl.gz"),
        ("a" * 300 + ".jsonl.gz", ".jsonl.gz"),
    ],
)
def test_any_name_becomes_one_plain_file_inside_uploads(tmp_path, name, ends):
    path = save_upload(tmp_path, name, b"data")
    assert path.parent == tmp_path / "cache" / "uploads" and path.name.endswith(ends)
    assert not path.name.startswith(".") and len(path.name) < 160 and path.read_bytes() == b"data"


def test_the_same_name_twice_gives_two_files_and_the_first_is_kept(tmp_path):
    first = save_upload(tmp_path, "corpus.jsonl", b"first")
    second = save_upload(tmp_path, "corpus.jsonl", b"second")
    assert first != second and first.read_bytes() == b"first" and second.read_bytes() == b"second"


def test_the_write_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import delt_engine.fileio as fileio

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full_disk)
    with pytest.raises(OSError) as info:
        save_upload(tmp_path, "corpus.jsonl", b"x" * 1000)
    assert "corpus.jsonl" in str(info.value.filename)
    assert os.listdir(tmp_path / "cache" / "uploads") == []  # nothing half-written, no temp file
