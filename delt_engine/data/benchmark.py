"""Multiple-choice benchmark files: one JSON object per line with a context, choices and the answer's index
(the format the demo's benchmark uses, and ``benchmark export --format lm-eval`` turns into an lm-eval task)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..fileio import json_object_line


@dataclass(frozen=True)
class Item:
    """One multiple-choice question."""

    id: str
    task: str
    context: str
    choices: tuple[str, ...]
    answer: int


def load_benchmark(path: str | Path) -> list[Item]:
    """Read a benchmark JSONL file: one {"id"?, "task", "context" (or "question"), "choices", "answer"}
    per line. A missing ``task`` defaults to the file's stem; a missing ``id`` to the line number.

    Raises:
        DataError naming the file and line for malformed JSON, missing fields, fewer than 2 choices or
        an answer index out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"benchmark file {path} does not exist; give a JSONL file of multiple-choice items")
    items: list[Item] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.strip():
                items.append(_parse_item(line, f"{path}:{line_no}", str(line_no), path.stem))
    if not items:
        raise DataError(f"benchmark file {path} has no items; add JSON lines with context, choices, answer")
    return items


def _parse_item(line: str, where: str, default_id: str, default_task: str) -> Item:
    rec = json_object_line(line, where, "context, choices and answer")
    context = rec.get("context", rec.get("question"))
    if not isinstance(context, str):
        raise DataError(f"{where}: needs a string 'context' (or 'question'); use \"\" for none")
    choices = rec.get("choices")
    if not isinstance(choices, list) or len(choices) < 2:
        raise DataError(f"{where}: 'choices' must be a list of at least 2 strings, got {choices!r}")
    if not all(isinstance(c, str) and c for c in choices):
        raise DataError(f"{where}: every choice must be a non-empty string, got {choices!r}")
    answer = rec.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise DataError(f"{where}: 'answer'={answer!r} must be an integer index in [0, {len(choices) - 1}]")
    task = rec.get("task", default_task)
    if not isinstance(task, str) or not task:
        raise DataError(f"{where}: 'task' must be a non-empty string, got {task!r}")
    return Item(str(rec.get("id", default_id)), task, context, tuple(choices), answer)
