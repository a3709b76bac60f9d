"""Scores made elsewhere (the CLI's ``score --output``, another tool, a notebook) registered as a
finished scoring job of the workspace, so the app's Score, Organize and Train pages can use them.

The scores file is read, never modified: its rows are validated against the corpus's ids and
copied into ``scores/<job>/scores.parquet`` beside a ``config.json`` that names the corpus (so the
job belongs to that dataset) and a status "done".
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from pathlib import Path

import polars as pl

from ..errors import ConfigError, DataError

DIRECTIONS = ("higher_better", "higher_harder")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def read_score_file(path: str | Path, id_field: str = "id", score_field: str = "score") -> pl.DataFrame:
    """The scores of a JSONL/Parquet file as (id, score, other columns), validated.

    Raises:
        DataError: a missing column (the available ones listed), a non-numeric score column, a
            missing/duplicated id or a non-finite score (with its row number), or an empty file.
    """
    from ..data.corpus import read_records

    frame = read_records(path)
    where = str(path)
    for name, option in ((id_field, "id_field"), (score_field, "score_field")):
        if name not in frame.columns:
            raise DataError(
                f"{where}: no column {name!r} (columns: {', '.join(frame.columns) or 'none'}); "
                f"name the right one with {option}"
            )
    if frame.height == 0:
        raise DataError(f"{where}: the file holds no scores")
    if not frame.schema[score_field].is_numeric():
        raise DataError(f"{where}: column {score_field!r} holds {frame.schema[score_field]}, not numbers")
    frame = frame.with_row_index("_row", offset=1)
    ids = frame[id_field].cast(pl.Utf8, strict=False)
    bad = frame.filter(ids.is_null())
    if bad.height:
        raise DataError(f"{where}: row {bad['_row'][0]} has no {id_field!r}; every score needs the id of its sample")
    dup = frame.filter(ids.is_duplicated())
    if dup.height:
        raise DataError(
            f"{where}: id {str(dup[id_field][0])!r} appears more than once (rows "
            f"{', '.join(str(r) for r in dup.filter(pl.col(id_field) == dup[id_field][0])['_row'])})"
        )
    values = frame[score_field].cast(pl.Float64)
    bad = frame.filter(values.is_null() | values.is_nan() | values.is_infinite())
    if bad.height:
        raise DataError(
            f"{where}: row {bad['_row'][0]} (id {str(bad[id_field][0])!r}) has score "
            f"{bad[score_field][0]!r}; scores must be finite numbers (drop the row or fix it)"
        )
    rest = [c for c in frame.columns if c not in ("_row", id_field, score_field, "id", "score", "text")]
    return frame.select(ids.alias("id"), values.alias("score"), *rest)


def import_scores(
    scores_root: str | Path,
    corpus: str | Path,
    scores_file: str | Path,
    *,
    name: str,
    direction: str = "higher_better",
    id_field: str = "id",
    score_field: str = "score",
    text_field: str = "text",
) -> Path:
    """Register ``scores_file`` as a finished scoring job named ``name`` for ``corpus``.

    Args:
        scores_root: the workspace ``scores/`` folder.
        corpus: the corpus file the scores belong to (the app's dataset file); its ids must cover
            every scored id. Scoring only part of the corpus is fine (e.g. a proxy subset).
        scores_file: JSONL or Parquet with an id column and a numeric score column; other columns
            are kept as components (``quality``, list columns of per-step factors, ...), except
            the corpus's own fields (``text``, metadata), which the CLI's output repeats.
        name: the method name the pages show (letters, digits, ``_``, ``-``); a built-in name such as
            ``lqs`` gets that scorer's views when the components are there.
        direction: "higher_better" or "higher_harder" (e.g. perplexity).

    Returns:
        The new job directory (status "done").
    """
    from ..data.corpus import load_corpus
    from ..fileio import atomic_write_bytes, write_json
    from ..jobs.protocol import write_status

    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(f"score name {name!r} must be 1-40 letters, digits, '_' or '-' (e.g. lqs-cli)")
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction {direction!r} must be one of {', '.join(DIRECTIONS)}")
    corpus, scores_file = Path(corpus).absolute(), Path(scores_file).absolute()
    scores = read_score_file(scores_file, id_field, score_field)
    corpus_frame = load_corpus(corpus, text_field=text_field).frame
    known = corpus_frame["id"].cast(pl.Utf8)
    # a CLI output file repeats every corpus field (text, kind, ...): keep only what the scorer added
    scores = scores.drop([c for c in scores.columns if c in corpus_frame.columns and c not in ("id", "score")])
    unknown = scores.filter(~pl.col("id").is_in(known.implode()))
    if unknown.height:
        examples = ", ".join(repr(i) for i in unknown["id"].head(3))
        raise DataError(
            f"{scores_file}: {unknown.height} of {scores.height} ids are not in {corpus.name} "
            f"(e.g. {examples}; its ids look like {', '.join(repr(i) for i in known.head(3))}); "
            "score the same corpus file, or name the id column with id_field"
        )
    stamp = f"{scores_file}|{time.time_ns()}"
    job_dir = (
        Path(scores_root) / f"{name}-import-{time.strftime('%Y%m%d-%H%M%S')}-"
        f"{hashlib.sha1(stamp.encode()).hexdigest()[:6]}"
    )
    job_dir.mkdir(parents=True, exist_ok=False)
    write_json(
        job_dir / "config.json",
        {
            "input": str(corpus),
            "method": name,
            "direction": direction,
            "imported_from": str(scores_file),
            "id_field": id_field,
            "score_field": score_field,
        },
    )
    buf = io.BytesIO()
    scores.write_parquet(buf)
    atomic_write_bytes(job_dir / "scores.parquet", buf.getvalue())
    write_status(
        job_dir, "done", direction=direction, n_scored=scores.height, n_corpus=known.len(), elapsed_s=0.0, imported=True
    )
    return job_dir
