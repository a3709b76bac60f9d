import os
import subprocess
import sys

from tests.conftest import ROOT


def test_import_does_not_pull_streamlit():
    code = "import sys, delt_engine, delt_engine.cli; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_streamlit_import_in_engine_source():
    offenders = [
        p
        for p in (ROOT / "delt_engine").rglob("*.py")
        if "import streamlit" in p.read_text() or "from streamlit" in p.read_text()
    ]
    assert offenders == []


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "delt_engine", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    assert "COMMAND" in out.stdout


# ----------------------------------------------------------------------------- the installable package

import re  # noqa: E402
import shutil  # noqa: E402
import zipfile  # noqa: E402

import pytest  # noqa: E402

import delt_engine  # noqa: E402

ROOT_ONLY_SKIPS = {".git", ".venv", "workspace", "test-artifacts", "build", ".pytest_cache", ".whl", ".gpu"}


def skip_in_copy(folder, names):
    """What the wheel build does not need: caches, venvs and workspaces (the last ones at the root only)."""
    skipped = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    return skipped | (ROOT_ONLY_SKIPS & set(names) if os.path.samefile(folder, ROOT) else set())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the checkout (offline, no dependency install, tree left clean)."""
    # the build backend of pyproject.toml, already in every venv with the pinned torch (it needs setuptools>=77)
    pytest.importorskip("setuptools", minversion="70.1")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=skip_in_copy)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (path,) = (tmp / "dist").glob("delt_studio-*.whl")
    return path


def test_wheel_holds_the_engine_the_app_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert wheel.name.startswith(f"delt_studio-{delt_engine.__version__}-")
    # every engine (sub-)package of the checkout, with all its modules
    for module in (ROOT / "delt_engine").rglob("*.py"):
        if "__pycache__" not in module.parts:
            assert module.relative_to(ROOT).as_posix() in names
    assert "delt_engine/py.typed" in names
    # the app as package data of delt_studio_app, so `delt app` finds it from any directory
    for part in [
        "app.py",
        *(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py")),
        *(p.relative_to(ROOT).as_posix() for p in (ROOT / "ui").glob("*.py")),
        "assets/logo.svg",
        ".streamlit/config.toml",
    ]:
        assert f"delt_studio_app/{part}" in names
    top = {n.split("/")[0] for n in names}
    assert top == {"delt_engine", "delt_studio_app", f"delt_studio-{delt_engine.__version__}.dist-info"}


def test_wheel_metadata_entry_point_and_extras(wheel):
    archive = zipfile.ZipFile(wheel)
    info = f"delt_studio-{delt_engine.__version__}.dist-info"
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert re.search(r"^\[console_scripts\]\s*\ndelt = delt_engine\.cli:console_main$", entry_points, re.M)
    metadata = archive.read(f"{info}/METADATA").decode()
    assert "Requires-Python: >=3.11" in metadata
    for extra in ("app", "eval", "trackers", "dev"):
        assert f"Provides-Extra: {extra}" in metadata
    assert re.search(r"^Requires-Dist: torch<3,>=2\.13$", metadata, re.M)
    assert re.search(r"^Requires-Dist: streamlit.*; extra == \"app\"$", metadata, re.M)


def test_lock_files_satisfy_the_package_ranges():
    """requirements*.txt (the exact lock the README installs) lies inside pyproject's ranges."""
    tomllib = pytest.importorskip("tomllib")
    requirements = pytest.importorskip("packaging.requirements")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    ranges = {}
    for text in declared:
        req = requirements.Requirement(text)
        ranges[req.name.lower()] = req.specifier
    pins = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                req = requirements.Requirement(line)
                pins[req.name.lower()] = next(iter(req.specifier)).version
    checked = [name for name in pins if name in ranges]
    assert {"torch", "transformers", "polars", "streamlit", "lm-eval", "pytest"} <= set(checked)
    outside = {name: (pins[name], str(ranges[name])) for name in checked if pins[name] not in ranges[name]}
    assert outside == {}
    assert (ROOT / "delt_engine" / "py.typed").is_file()


def test_module_entry_point_version_from_any_directory(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "delt_engine", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"delt-studio {delt_engine.__version__}"


def test_unpacked_wheel_runs_from_any_directory_and_finds_its_app(wheel, tmp_path):
    """The wheel's files alone (as pip would lay them out in site-packages) give a working CLI and app path."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = (
        "import delt_engine, sys; from delt_engine.cli.app import app_command; "
        "cmd, folder = app_command(8599, []); print(delt_engine.__file__); print(folder); print(' '.join(cmd))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    engine, folder, command = out.stdout.strip().splitlines()
    assert engine.startswith(str(site)) and folder == str(site / "delt_studio_app")
    assert f"run {site / 'delt_studio_app' / 'app.py'}" in command
    assert "--server.address=localhost" in command and "--server.port=8599" in command
    assert "--client.toolbarMode=minimal" in command  # the app's .streamlit/config.toml, as flags
    version = subprocess.run(
        [sys.executable, "-m", "delt_engine", "--version"],
        cwd=work,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert version.stdout.strip() == f"delt-studio {delt_engine.__version__}"


def test_app_command_in_a_checkout_uses_the_checkout():
    from delt_engine.cli.app import app_command

    command, folder = app_command(8501, ["--", "--server.headless=false"])
    assert folder == ROOT
    assert command[1:5] == ["-m", "streamlit", "run", str(ROOT / "app.py")]
    assert command[-1] == "--server.headless=false" and "--" not in command
    assert command.count("--server.address=localhost") == 1
