"""CLI polish: --version, help on every option, clean --help text, progress as log lines off a terminal."""

import argparse
import io
import subprocess
import sys

import pytest

import delt_engine
from delt_engine.cli import build_parser, help_text
from delt_engine.cli.progress import ProgressLog, format_seconds
from delt_engine.progress import Progress
from tests.conftest import ROOT


def walk(parser: argparse.ArgumentParser, path=()):
    """Every (command path, parser) of the CLI, the top level included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))


def test_every_option_of_every_command_has_help():
    missing, commands = [], 0
    for path, parser in walk(build_parser()):
        commands += 1
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [(path, c.dest) for c in action._choices_actions if not c.help]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append((path, action.option_strings or action.dest))
    assert commands > 15  # the walk reached the nested commands (runs list, benchmark export, ...)
    assert missing == []


def test_help_renders_without_rst_markup():
    for path, parser in walk(build_parser()):
        text = parser.format_help()
        assert "``" not in text, f"{' '.join(path)} --help shows reST markup"
    train = dict(walk(build_parser()))[("train",)].format_help()
    assert "<run-dir>/cancel" in train and "    python -m delt_engine train --input ordered.jsonl" in train


def test_help_text_strips_inline_literals_only():
    assert help_text("Run ``a --b`` now.\n\n    ex ``c``\n") == "Run a --b now.\n\n    ex c"


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser(prog="delt").parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"delt-studio {delt_engine.__version__}"


def test_module_entry_point_version():
    out = subprocess.run(
        [sys.executable, "-m", "delt_engine", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == f"delt-studio {delt_engine.__version__}"


def test_progress_log_lines_when_not_a_terminal():
    stream = io.StringIO()
    log = ProgressLog(stream=stream, interval_s=3600)
    for done in range(0, 101):
        log(Progress("warm-up", done, 100, message=f"loss {5 - done / 50:.3f}"))
    log(Progress("tokenizer", 0, 1))
    log(Progress("tokenizer", 1, 1))
    log(Progress("tokenizer", 1, 1))  # the last report may come twice
    log.update("runs", 0.0, 4, "queued 4")
    log.update("runs", 1.5, 4, "done 1 running 1 queued 2")
    log.close()
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text  # no bar redraws, no terminal codes
    lines = text.splitlines()
    assert len(lines) == 3, lines  # one line per phase: the interval is not reached within a phase
    assert lines[0].startswith("warm-up: 100/100 (100%), loss 3.000, done in ")
    assert lines[1].startswith("tokenizer: done in ")
    assert lines[2].startswith("runs: 1.5/4 (38%), done 1 running 1 queued 2, ")  # closed unfinished
    assert "left" in lines[2]


def test_progress_log_writes_at_most_one_line_per_interval():
    stream = io.StringIO()
    log = ProgressLog(stream=stream, interval_s=0.0, unit="step")
    for step in (1, 2, 3):
        log.update("train", step, 3, f"loss={4 - step}")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("train: 1/3 steps (33%), loss=3, ") and lines[0].endswith(" left")
    assert lines[2].startswith("train: 3/3 steps (100%), loss=1, done in ")


def test_progress_bars_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    log = ProgressLog(stream=stream, interval_s=3600)
    for done in range(0, 11):
        log(Progress("trajectory", done, 10))
    assert "\r" in stream.getvalue() and "trajectory" in stream.getvalue()
    assert log.bar is None  # closed at the end of the phase


def test_disabled_progress_writes_nothing():
    stream = io.StringIO()
    log = ProgressLog(enabled=False, stream=stream, interval_s=0)
    log(Progress("train", 1, 2))
    log.close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("seconds, text", [(4.4, "4s"), (65, "1m05s"), (3725, "1h02m")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
