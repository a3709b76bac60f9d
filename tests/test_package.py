import subprocess
import sys

from tests.conftest import ROOT


def test_import_does_not_pull_streamlit():
    code = \
        "import sys, delt_engine, delt_engine.cli; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_streamlit_import_in_engine_source():
    offenders = [p for p in (ROOT / "delt_engine").rglob("*.py")
                 if "import streamlit" in p.read_text() or "from streamlit" in p.read_text()]
    assert offenders == []


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "delt_engine", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    assert "COMMAND" in out.stdout
