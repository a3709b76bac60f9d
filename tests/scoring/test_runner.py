"""The scoring runner: preparation helpers, score_frame/run_scoring, and scoring job directories."""

import json
import signal

import polars as pl
import pytest

from delt_engine.data.tokenizer import train_tokenizer
from delt_engine.errors import Cancelled, ConfigError, DataError
from delt_engine.fileio import read_json
from delt_engine.jobs.protocol import read_status
from delt_engine.jobs.score_job import run_score_job
from delt_engine.scoring import SCORERS, ScoreContext, ScorerInfo
from delt_engine.scoring.runner import prepare_model, prepare_samples, prepare_tokenizer, run_scoring, score_frame
from delt_engine.workspace.scorings import create_score_job

TEXTS = [
    "Rain fell on the tin roof all night long.",
    "Bees dance to tell the hive where flowers are.",
    "A triangle's angles always add up to one hundred and eighty degrees.",
    "The baker woke at four to knead the dough.",
    "Buy now! Buy now! Buy now! Buy now! Buy now!",
    "Comets grow tails when the sun warms their ice.",
]


def corpus(ids=None, **extra):
    ids = ids or [f"d{i}" for i in range(len(TEXTS))]
    return pl.DataFrame({"id": ids, "text": TEXTS, **extra})


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


# ---------------------------------------------------------------- score_frame / run_scoring


def test_score_frame_keeps_input_order_ids_and_columns(tokenizer):
    frame = corpus(ids=["z", "b", "q", "a", "m", "c"], kind=["x"] * 6)
    out = score_frame(frame, "length", tokenizer=tokenizer)
    assert out["id"].to_list() == ["z", "b", "q", "a", "m", "c"]
    assert out.columns == ["id", "text", "kind", "score", "n_tokens", "n_chars"]
    expected = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in TEXTS]
    assert out["score"].to_list() == [float(n) for n in expected]


def test_integer_ids_keep_their_dtype_and_old_scores_are_replaced():
    frame = pl.DataFrame({"id": [10, 11, 12, 13, 14, 15], "text": TEXTS, "score": [9.0] * 6})
    out = score_frame(frame, "compression")
    assert out.schema["id"] == pl.Int64 and out["id"].to_list() == [10, 11, 12, 13, 14, 15]
    assert out.columns.count("score") == 1
    assert out["score"].to_list() != [9.0] * 6


def test_user_metadata_sharing_a_scorer_column_name_is_kept():
    frame = pl.DataFrame(
        {"id": [f"d{i}" for i in range(6)], "text": TEXTS, "n_bytes": ["mine"] * 6, "lang": ["en"] * 6}
    )
    out = score_frame(frame, "compression")
    assert out["n_bytes"].to_list() == ["mine"] * 6 and out["lang"].to_list() == ["en"] * 6  # the user's own
    assert out["compression_n_bytes"].to_list() == [len(t.encode()) for t in TEXTS]
    once = score_frame(frame.drop("n_bytes"), "compression")
    again = score_frame(once, "compression")  # this scorer's own columns, scored again: replaced
    assert again.columns == once.columns and "compression_n_bytes" not in again.columns


def test_run_scoring_returns_metadata():
    result = run_scoring(corpus(), "random", seed=7)
    assert result.method == "random" and result.direction == "higher_better"
    assert result.config["seed"] == 7 and result.config["n_scored"] == len(TEXTS)
    assert result.elapsed_s >= 0
    assert result.scores.columns == ["id", "score"]


def _score_every_other(ctx):
    ids = ctx.frame["id"].to_list()[::2]
    return pl.DataFrame({"id": ids, "score": [float(i) for i in range(len(ids))]})


def _score_nothing_on_this_rank(ctx):
    return None


def test_rows_a_method_did_not_score_get_null(monkeypatch):
    monkeypatch.setitem(
        SCORERS,
        "every-other",
        ScorerInfo("every-other", "higher_better", "test", False, __name__, "_score_every_other"),
    )
    out = score_frame(corpus(), "every-other")
    assert out["id"].to_list() == [f"d{i}" for i in range(len(TEXTS))]
    assert out["score"].to_list() == [0.0, None, 1.0, None, 2.0, None]


def test_non_zero_rank_scorer_returns_none(monkeypatch):
    monkeypatch.setitem(
        SCORERS, "rank1", ScorerInfo("rank1", "higher_better", "test", False, __name__, "_score_nothing_on_this_rank")
    )
    assert run_scoring(corpus(), "rank1") is None
    assert score_frame(corpus(), "rank1") is None


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ConfigError, match="lqs.*perplexity.*random"):
        score_frame(corpus(), "nope")
    with pytest.raises(DataError, match="empty"):
        score_frame(corpus().head(0), "random")
    with pytest.raises(DataError, match="'text' column"):
        score_frame(corpus().rename({"text": "body"}), "random")
    with pytest.raises(DataError, match="more than once"):
        score_frame(corpus(ids=["a", "b", "a", "c", "d", "e"]), "random")
    with pytest.raises(DataError, match="no text"):
        score_frame(pl.DataFrame({"id": ["a", "b"], "text": ["x", None]}), "random")
    with pytest.raises(ConfigError, match="batch_size"):
        score_frame(corpus(), "random", batch_size=0)


# ---------------------------------------------------------------- preparation helpers


def test_prepare_tokenizer_object_directory_training_and_model_dir(tmp_path, tokenizer):
    ctx = ScoreContext(frame=corpus(), tokenizer=tokenizer)
    assert prepare_tokenizer(ctx) is tokenizer
    tokenizer.save_pretrained(str(tmp_path / "tok"))
    loaded = prepare_tokenizer(ScoreContext(frame=corpus(), tokenizer=str(tmp_path / "tok")))
    assert loaded(TEXTS[0])["input_ids"] == tokenizer(TEXTS[0])["input_ids"]
    trained = prepare_tokenizer(
        ScoreContext(frame=corpus(), cache_dir=str(tmp_path / "cache"), options={"vocab_size": 300})
    )
    assert len(list((tmp_path / "cache").glob("tokenizer-*"))) == 1
    assert trained(TEXTS[2])["input_ids"] == tokenizer(TEXTS[2])["input_ids"]
    # a local model directory brings its own tokenizer
    ctx = ScoreContext(frame=corpus(), model="tiny-test", tokenizer=tokenizer, device="cpu")
    prepare_model(ctx, tokenizer).save_pretrained(str(tmp_path / "model"))
    tokenizer.save_pretrained(str(tmp_path / "model"))
    own = prepare_tokenizer(ScoreContext(frame=corpus(), model=str(tmp_path / "model")))
    assert len(own) == len(tokenizer)


def test_prepare_samples_and_model(tokenizer):
    ctx = ScoreContext(frame=corpus(), model="tiny-test", device="cpu", max_length=6, seed=2)
    samples = prepare_samples(ctx, tokenizer)
    assert samples.ids == [f"d{i}" for i in range(len(TEXTS))]
    assert samples.input_ids.shape[1] <= 6
    model = prepare_model(ctx, tokenizer)
    assert not model.training
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    with pytest.raises(ConfigError, match="max_length=1000"):
        prepare_model(ScoreContext(frame=corpus(), model="tiny-test", device="cpu", max_length=1000), tokenizer)
    with pytest.raises(ConfigError, match="warmup_steps"):
        prepare_model(
            ScoreContext(frame=corpus(), model="tiny-test", device="cpu", options={"warmup_steps": -1}), tokenizer
        )


def test_model_directory_with_a_smaller_vocabulary_is_rejected(tmp_path, tokenizer):
    small = train_tokenizer(["ab ab"], vocab_size=300)
    assert len(small) < len(tokenizer)
    ctx = ScoreContext(frame=corpus(), model="tiny-test", device="cpu")
    prepare_model(ctx, small).save_pretrained(str(tmp_path / "m"))
    with pytest.raises(DataError, match="token embeddings"):
        prepare_model(ScoreContext(frame=corpus(), model=str(tmp_path / "m"), device="cpu"), tokenizer)


# ---------------------------------------------------------------- job directories


def _job(tmp_path, method="perplexity", **config):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    base = {
        "input": str(path),
        "method": method,
        "model": "tiny-test",
        "device": "cpu",
        "max_length": 32,
        "batch_size": 2,
        "cache_dir": str(tmp_path / "cache"),
        "options": {"vocab_size": 300},
    }
    return create_score_job(tmp_path / "scores", {**base, **config})


def test_create_score_job_writes_config_and_queued_status(tmp_path):
    job_dir = _job(tmp_path)
    assert job_dir.parent == tmp_path / "scores" and job_dir.name.startswith("perplexity-")
    config = read_json(job_dir / "config.json")
    assert config["method"] == "perplexity" and config["seed"] == 0 and config["target"] is None
    assert read_status(job_dir)["state"] == "queued"
    assert _job(tmp_path) != job_dir
    with pytest.raises(ConfigError, match="not known"):
        create_score_job(tmp_path / "scores", {"input": config["input"], "method": "nope"})
    with pytest.raises(DataError, match="does not exist"):
        create_score_job(tmp_path / "scores", {"input": str(tmp_path / "missing.jsonl"), "method": "random"})


def test_run_score_job_writes_scores_and_done_status(tmp_path):
    job_dir = _job(tmp_path)
    handler = signal.getsignal(signal.SIGTERM)
    result = run_score_job(job_dir)
    assert signal.getsignal(signal.SIGTERM) is handler
    status = read_status(job_dir)
    assert status["state"] == "done" and status["pid"] > 0
    assert status["n_scored"] == len(TEXTS) and status["direction"] == "higher_harder"
    assert status["started_at"] <= status["ended_at"]
    scores = pl.read_parquet(job_dir / "scores.parquet")
    assert scores.columns == ["id", "score", "loss", "n_tokens"]
    assert scores["id"].to_list() == [f"d{i}" for i in range(len(TEXTS))]
    assert scores["score"].to_list() == pytest.approx(result.scores["score"].to_list())
    progress = read_json(job_dir / "progress.json")
    assert progress["phase"] == "perplexity" and progress["done"] == progress["total"] == len(TEXTS)


def test_cancel_file_before_start_cancels_without_scores(tmp_path):
    job_dir = _job(tmp_path)
    (job_dir / "cancel").touch()
    with pytest.raises(Cancelled):
        run_score_job(job_dir)
    assert read_status(job_dir)["state"] == "cancelled"
    assert not (job_dir / "scores.parquet").exists()


def test_cancel_during_scoring_stops_at_the_next_batch(tmp_path):
    job_dir = _job(tmp_path)
    seen = []

    def cancel_once_scoring_starts(progress):
        seen.append((progress.phase, progress.done))
        if progress.phase == "perplexity":
            (job_dir / "cancel").touch()

    with pytest.raises(Cancelled):
        run_score_job(job_dir, on_progress=cancel_once_scoring_starts)
    assert read_status(job_dir)["state"] == "cancelled"
    assert not (job_dir / "scores.parquet").exists()
    assert ("perplexity", 0) in seen and ("perplexity", len(TEXTS)) not in seen


def test_failed_job_records_the_error(tmp_path):
    job_dir = _job(tmp_path, model="no-such-preset")
    with pytest.raises(ConfigError):
        run_score_job(job_dir)
    status = read_status(job_dir)
    assert status["state"] == "failed" and "no-such-preset" in status["error"]
    assert not (job_dir / "scores.parquet").exists()
