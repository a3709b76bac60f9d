"""AppTest: the app refuses to serve a non-loopback address, user text never renders as markdown or HTML,
and uploads each get a file of their own."""

from __future__ import annotations

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP, TIMEOUT, charts, open_page, rendered, server_address, texts
from tests.conftest import ROOT
from ui.serving import is_loopback

REFUSAL = "DELT Studio is not serving this address"


# ----------------------------------------------------------------------------- serving


@pytest.mark.parametrize(
    "address, loopback",
    [
        (None, False),
        ("", False),
        ("0.0.0.0", False),
        ("::", False),
        ("[::]", False),
        ("192.168.1.5", False),
        ("10.0.0.1", False),
        ("myhost.example", False),
        ("localhost", True),
        ("LOCALHOST", True),
        ("app.localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("unix:///tmp/delt.sock", True),
    ],
)
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


@pytest.mark.parametrize("address", [None, "0.0.0.0", "::", "192.168.1.5"])
def test_app_refuses_a_non_loopback_address(workspace, monkeypatch, address):
    monkeypatch.delenv("DELT_ALLOW_REMOTE", raising=False)
    with server_address(address):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
        assert not at.exception
        assert [t.value for t in at.title] == [REFUSAL]
        said = " ".join(texts(at, "error") + texts(at, "markdown"))
        assert "no authentication" in said and "DELT_ALLOW_REMOTE" in said and "Local path" in said
        assert "launch" in said and "read any file" in said
        assert not at.sidebar.children or not list(at.sidebar)[1:]  # no workspace, no job summary
        assert not at.button and not at.text_input and not charts(at)  # nothing of the app itself
        with pytest.raises(ValueError, match="Known pages: \\['Not serving'\\]"):
            at.switch_page("pages/data.py")  # the refusal is the only page there is
        direct = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=TIMEOUT).run()
        assert not direct.text_input and not direct.button  # a page run on its own hands over to app.py


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1", "::1"])
def test_app_serves_a_loopback_address(workspace, address):
    with server_address(address):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception and at.title[0].value == "Data"


def test_delt_allow_remote_serves_the_network_with_a_warning(workspace, monkeypatch):
    monkeypatch.setenv("DELT_ALLOW_REMOTE", "1")
    with server_address("0.0.0.0"):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception and at.title[0].value == "Data"
    assert any("DELT_ALLOW_REMOTE=1" in w.value and "no authentication" in w.value for w in at.sidebar.warning)
    monkeypatch.setenv("DELT_ALLOW_REMOTE", "yes")  # only "1" allows it
    with server_address("0.0.0.0"):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert at.title[0].value == REFUSAL


# ----------------------------------------------------------------------------- user text

IMAGE, LINK, TAG = "![x](http://example.com/a.png)", "[link](http://evil)", "<img src=x>"
RAW = (IMAGE, LINK, TAG, "![i](", "![c](", "[k](", "<a href")
# elements whose content Streamlit renders as plain text (user text belongs there)
PLAIN = {
    "text",
    "code",
    "dataframe",
    "arrow_data_frame",
    "plotly_chart",
    "text_input",
    "text_area",
    "number_input",
    "download_button",
}
OPTIONS_PLAIN = {"selectbox", "multiselect"}  # their options are plain text; their labels are markdown


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def _strings(message):
    """Every string field of a protobuf message, recursively."""
    if message is None or not hasattr(message, "ListFields"):
        return
    for field, value in message.ListFields():
        values = (
            list(value)
            if getattr(field, "is_repeated", False)
            or (hasattr(value, "__len__") and not isinstance(value, (str, bytes)) and not hasattr(value, "ListFields"))
            else [value]
        )
        for item in values:
            if isinstance(item, str):
                yield item
            else:
                yield from _strings(item)


def markdown_leaks(at: AppTest) -> list[str]:
    """Every element that would render one of the payloads as markdown: the payload is there with its
    first character not backslash-escaped."""
    leaks = []
    for node in _walk(at._tree):
        kind = getattr(node, "type", "")
        if kind in PLAIN:
            continue
        shown = [str(node.label)] if kind in OPTIONS_PLAIN else list(_strings(getattr(node, "proto", None)))
        leaks += [
            f"{kind}: {raw} in {text[:120]!r}"
            for text in shown
            for raw in RAW
            if re.search(r"(?<!\\)" + re.escape(raw), text)
        ]
    return leaks


def hostile_corpus(path):
    docs = []
    for i in range(8):
        docs.append(
            {
                "id": "![i](http://example.com/i.png)" if i == 0 else f"d{i}",
                "text": f"Look {IMAGE} here {LINK} and {TAG} end, document {i} " + "word " * (i + 3),
                "kind": "[k](http://evil)" if i % 2 else '<a href="http://evil">b</a>',
                "![c](http://example.com/c.png)": "yes" if i % 3 else "no",
            }
        )
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def test_corpus_text_ids_and_metadata_never_render_as_markdown(workspace, tmp_path):
    at = open_page()
    at.session_state["data.source"] = "Local path"  # the open tab is the source
    at.text_input(key="data.path").set_value(str(hostile_corpus(tmp_path / "hostile.jsonl")))
    at.text_input(key="data.name").set_value("hostile")
    at.button(key="data.import").click().run()
    assert not at.exception and at.selectbox(key="data.dataset").value == "hostile"
    assert not markdown_leaks(at), markdown_leaks(at)
    # the payloads are on the page, as text: the document, its id and metadata, the filter labels
    assert any(IMAGE in t.value and TAG in t.value for t in at.text)
    shown = (
        [rendered(e.label) for e in at.expander] + texts(at, "caption") + [rendered(m.label) for m in at.multiselect]
    )
    assert any("![i](http://example.com/i.png)" in s for s in shown)
    assert any("[k](http://evil)" in s or '<a href="http://evil">b</a>' in s for s in shown)
    assert any("![c](http://example.com/c.png)" in s for s in shown)
    for chart in charts(at):  # plotly draws legend names and tick labels with its HTML subset: escaped
        assert "<a href" not in chart.proto.spec and "<img" not in chart.proto.spec

    at.switch_page("pages/score.py").run()
    at.multiselect(key="score.methods").set_value(["length"]).run()
    at.button(key="score.start").click().run()
    assert not at.exception and not markdown_leaks(at), markdown_leaks(at)
    at.switch_page("pages/organize.py").run()
    assert not at.exception and not markdown_leaks(at), markdown_leaks(at)


def test_error_messages_that_quote_user_input_are_escaped(workspace, tmp_path):
    at = open_page()
    missing = tmp_path / "![x](http:" / "evil)"
    at.session_state["data.source"] = "Local path"  # the open tab is the source
    at.text_input(key="data.path").set_value(str(missing))
    at.text_input(key="data.name").set_value("x1")
    at.button(key="data.import").click().run()
    assert any("Import failed" in t and "evil)" in t for t in texts(at, "error")), texts(at, "error")
    assert not markdown_leaks(at)


# ----------------------------------------------------------------------------- uploads


def test_two_uploads_with_one_name_are_two_files_and_keep_their_datasets(workspace):
    first = b"".join(json.dumps({"text": f"first upload {i}"}).encode() + b"\n" for i in range(3))
    second = b"".join(json.dumps({"text": f"second upload {i}"}).encode() + b"\n" for i in range(5))
    sources = []
    for name, data in (("up-one", first), ("up-two", second)):
        at = open_page()
        at.file_uploader(key="data.upload").upload("corpus.jsonl", data, "application/jsonl")
        at.text_input(key="data.name").set_value(name)
        at.button(key="data.import").click().run()
        assert not at.exception and not texts(at, "error"), texts(at, "error")
        sources.append(json.loads((workspace / "datasets" / name / "manifest.json").read_text())["source"])
    assert sources[0] != sources[1]
    from pathlib import Path

    assert [Path(s).read_bytes() for s in sources] == [first, second]  # the first one was not replaced
    assert all(
        Path(s).parent == workspace / "cache" / "uploads" and Path(s).name.endswith("-corpus.jsonl") for s in sources
    )


def test_an_upload_with_a_hidden_name_is_stored_under_a_plain_one(workspace):
    """ ".jsonl" (a name that is only a suffix) is kept as "<time>-<random>-upload.jsonl"; the uploader
    itself refuses a name without an allowed suffix, such as "..", before the page sees it (the
    engine's ``save_upload`` is tested with those names directly)."""
    at = open_page()
    at.file_uploader(key="data.upload").upload(".jsonl", b'{"text": "a hidden name"}\n')
    at.text_input(key="data.name").set_value("hidden")
    at.button(key="data.import").click().run()
    assert not at.exception and not texts(at, "error"), texts(at, "error")
    source = json.loads((workspace / "datasets" / "hidden" / "manifest.json").read_text())["source"]
    assert source.endswith("-upload.jsonl") and "/cache/uploads/" in source
    assert not list((workspace / "cache" / "uploads").glob(".*"))
