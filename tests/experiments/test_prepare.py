"""Comparisons as recipes: per-arm data, held-out sets nothing else saw, one tokenizer, prepare-only."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from delt_engine.data.corpus import load_corpus
from delt_engine.data.dedup import normalize
from delt_engine.errors import ConfigError
from delt_engine.experiments import holdout
from delt_engine.experiments.prepare import prepare_comparison
from delt_engine.experiments.spec import parse_spec
from delt_engine.fileio import read_json
from delt_engine.workspace.layout import Workspace
from tests.conftest import ROOT

WORDS = [f"w{i}" for i in range(400)]  # a large vocabulary: unrelated documents share few word triples


def _doc(i: int, n: int | None = None) -> str:
    rng = random.Random(i)
    return " ".join(rng.choice(WORDS) for _ in range(n or 8 + i % 17)) + f" number {i}"


def _corpus(folder, n: int = 80) -> None:
    """A corpus with planted exact and near copies of clean documents (later in the file), and a target."""
    rows = [{"id": f"d{i}", "text": _doc(i), "is_noise": False} for i in range(n)]
    for i in range(0, n, 8):  # an exact copy (different case) and a copy with one word changed, both noise
        rows.append({"id": f"x{i}", "text": _doc(i).upper(), "is_noise": True})
        words = _doc(i).split()
        words[3] = "zebra"
        rows.append({"id": f"n{i}", "text": " ".join(words), "is_noise": True})
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    target = [{"id": f"t{i}", "text": f"target text {i} " + _doc(1000 + i, 10)} for i in range(20)]
    (folder / "target.jsonl").write_text("".join(json.dumps(r) + "\n" for r in target))


def _spec(**over) -> dict:
    spec = {
        "name": "recipes",
        "corpus": "corpus.jsonl",
        "target": "target.jsonl",
        "scorer": {"method": "length"},
        "validation_fraction": 0.2,
        "seeds": [0, 1],
        "arms": [
            {"label": "conventional", "selection": None, "ordering": "shuffle"},
            {
                "label": "DELT",
                "selection": {"method": "top-r", "ratio": 0.5},
                "ordering": {"method": "folding", "layers": 3},
            },
        ],
        "train": {
            "model": "tiny-test",
            "steps": 2,
            "batch_size": 4,
            "max_length": 16,
            "vocab_size": 300,
            "device": "cpu",
        },
    }
    spec.update(over)
    return spec


@pytest.fixture()
def prepared(tmp_path):
    _corpus(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(_spec()))
    return prepare_comparison(tmp_path / "spec.json", Workspace(tmp_path / "ws")), tmp_path


def test_each_arm_gets_its_own_selection_and_ordering(prepared):
    cmp, _ = prepared
    manifest = cmp.manifest
    inputs = {(r["arm"], r["seed"]): r["input"] for r in manifest["runs"]}
    assert manifest["arms"] == ["conventional", "DELT"] and manifest["baseline"] == "conventional"
    conventional = [pl.read_parquet(inputs["conventional", s]) for s in (0, 1)]
    delt = pl.read_parquet(inputs["DELT", 0])
    n_train = manifest["n_train_docs"]
    assert conventional[0].height == n_train and conventional[1].height == n_train  # no selection: everything
    assert conventional[0]["id"].to_list() != conventional[1]["id"].to_list()  # shuffle: one order per seed
    assert inputs["DELT", 0] == inputs["DELT", 1]  # folding does not depend on the seed
    assert delt.height == n_train // 2 == manifest["arm_data"]["DELT"]["n_selected"]
    # length is "higher = harder": top-r keeps the shortest half, and folding L=3 cycles through their sorted order
    lengths = sorted(conventional[0]["score"].to_list())
    assert sorted(delt["score"].to_list()) == lengths[: n_train // 2]
    scores = delt["score"].to_list()
    layers = delt["layer"].to_list()
    assert sorted(set(layers)) == [0, 1, 2] and scores != sorted(scores)  # folded: three ascending passes
    for layer in (0, 1, 2):
        part = [s for s, lay in zip(scores, layers) if lay == layer]
        assert part == sorted(part)  # each layer ascends
    configs = [read_json(cmp.dir.parent.parent / "runs" / r["id"] / "config.json") for r in manifest["runs"]]
    assert [c["provenance"]["arm"] for c in configs] == ["conventional", "conventional", "DELT", "DELT"]
    assert configs[2]["provenance"]["selection"] == {"method": "top-r", "ratio": 0.5}
    assert configs[0]["provenance"]["selection"] is None


def test_one_tokenizer_trained_on_every_training_document_before_selection(prepared, tmp_path):
    cmp, folder = prepared
    configs = [read_json(folder / "ws" / "runs" / r["id"] / "config.json") for r in cmp.manifest["runs"]]
    assert len({c["tokenizer"] for c in configs}) == 1 == len({cmp.manifest["tokenizer"]})
    # a comparison of the same corpus whose only arm keeps a small selection gets the very same tokenizer
    again = prepare_comparison(
        _spec(
            corpus=str(folder / "corpus.jsonl"),
            target=str(folder / "target.jsonl"),
            arms=[{"ordering": "sorting", "selection": {"method": "top-k", "k": 5}}],
        ),
        Workspace(folder / "ws"),
    )
    assert again.manifest["tokenizer"] == cmp.manifest["tokenizer"]


def test_planted_copies_never_straddle_the_validation_split(prepared):
    cmp, folder = prepared
    validation = load_corpus(cmp.manifest["validation"]).frame
    held = {normalize(t) for t in validation["text"].to_list()}
    assert validation.height > 0 and not validation["is_noise"].any()
    corpus = load_corpus(folder / "corpus.jsonl").frame
    for row in cmp.manifest["runs"]:
        trained = pl.read_parquet(row["input"])
        for text in trained["text"].to_list():
            assert normalize(text) not in held
        # no near copy of a held-out document (one changed word) is trained on either
        stems = {" ".join(t.split()[4:]) for t in held}
        assert not any(" ".join(normalize(t).split()[4:]) in stems for t in trained["text"].to_list())
    assert cmp.manifest["n_copies_removed"] > 0  # the planted copies of held-out documents left training
    assert cmp.manifest["n_train_docs"] + validation.height + cmp.manifest["n_copies_removed"] == corpus.height
    assert cmp.manifest["overlap"]["validation"] == {"exact": 0, "near": 0}


def test_validation_split_keeps_copy_groups_together():
    texts = [_doc(i) for i in range(40)] + [_doc(i).upper() for i in range(40)]
    frame = pl.DataFrame({"id": [str(i) for i in range(80)], "text": texts, "is_noise": [False] * 40 + [True] * 40})
    split = holdout.validation_split(frame, 0.25)
    held = set(split.validation["id"].to_list())
    assert len(held) == 10 and all(int(i) < 40 for i in held)
    assert set(split.removed_ids) == held | {str(int(i) + 40) for i in held}  # each with its copy
    assert holdout.validation_split(frame, 0.25).removed_ids == split.removed_ids  # seeded
    assert holdout.validation_split(frame, 0.0).removed_ids == []


def test_short_copies_with_a_word_changed_leave_training_with_their_held_out_original():
    rng = __import__("random").Random(3)
    words = [f"w{k}" for k in range(300)]
    originals = [" ".join(rng.choice(words) for _ in range(7)) for _ in range(40)]
    copies = []
    for text in originals:  # one middle word changed: 3 of 5 word 3-grams break (Jaccard 0.25 < 0.4)
        w = text.split()
        w[3] = "changed"
        copies.append(" ".join(w))
    frame = pl.DataFrame(
        {"id": [str(i) for i in range(80)], "text": originals + copies, "is_noise": [False] * 40 + [True] * 40}
    )
    split = holdout.validation_split(frame, 0.25)
    held = set(split.validation["id"].to_list())
    assert len(held) == 10
    assert set(split.removed_ids) == held | {str(int(i) + 40) for i in held}  # edit similarity 6/7 >= 0.75
    groups = holdout.copy_groups(originals + copies)
    assert groups.tolist() == list(range(40)) * 2
    assert holdout.overlap(originals[:5], copies) == {"exact": 0, "near": 5}


def test_scoring_and_evaluation_targets_are_disjoint(prepared):
    cmp, folder = prepared
    score_part = load_corpus(cmp.manifest["score_target"]).frame
    eval_part = load_corpus(cmp.manifest["eval_target"]).frame
    target = load_corpus(folder / "target.jsonl").frame
    assert score_part.height > 0 and eval_part.height > 0
    assert set(score_part["id"].to_list()).isdisjoint(eval_part["id"].to_list())
    assert sorted(score_part["id"].to_list() + eval_part["id"].to_list()) == sorted(target["id"].to_list())
    assert cmp.manifest["overlap"]["score_vs_eval_target"] == {"exact": 0, "near": 0}
    configs = [read_json(folder / "ws" / "runs" / r["id"] / "config.json") for r in cmp.manifest["runs"]]
    assert {c["target"] for c in configs} == {cmp.manifest["eval_target"]}  # target_loss: the evaluation part
    # the split depends on the texts only: the same file splits the same way every time
    again = holdout.split_target(target)
    assert again[1]["id"].to_list() == eval_part["id"].to_list()


def test_a_separate_evaluation_file_keeps_the_whole_target_for_scoring(tmp_path):
    _corpus(tmp_path)
    (tmp_path / "eval.jsonl").write_text(json.dumps({"text": "an evaluation text of its own"}) + "\n")
    cmp = prepare_comparison(
        _spec(
            corpus=str(tmp_path / "corpus.jsonl"),
            target=str(tmp_path / "target.jsonl"),
            eval_target=str(tmp_path / "eval.jsonl"),
        ),
        Workspace(tmp_path / "ws"),
    )
    assert cmp.manifest["score_target"] == str(tmp_path / "target.jsonl")
    assert cmp.manifest["eval_target"] == str(tmp_path / "eval.jsonl")


def test_spec_round_trips_through_its_json(tmp_path):
    _corpus(tmp_path)
    spec = parse_spec(
        _spec(
            corpus=str(tmp_path / "corpus.jsonl"),
            selection={"method": "top-k", "k": 10},
            arms=[
                {"label": "a", "ordering": "shuffle"},
                {"label": "b", "selection": None, "ordering": {"method": "zigzag", "layers": 2}},
                {"ordering": "sorting", "dedup": {"mode": "exact"}},
            ],
        )
    )
    assert spec.arms[0].selection.k == 10 and spec.arms[1].selection is None  # left out: the top-level one
    assert spec.labels == ["a", "b", "sorting · exact dedup"]
    assert parse_spec(json.loads(json.dumps(spec.to_dict()))) == spec


def test_orderings_shorthand_still_parses_old_specs():
    spec = parse_spec(
        {
            "corpus": "demo",
            "selection": {"method": "top-r", "ratio": 0.9},
            "orderings": ["shuffle", {"method": "folding", "layers": 3, "label": "FO"}],
        }
    )
    assert spec.labels == ["shuffle", "FO"] and all(a.selection.ratio == 0.9 for a in spec.arms)
    with pytest.raises(ConfigError, match="same label"):
        parse_spec({"corpus": "demo", "orderings": ["sorting", {"method": "sorting", "label": "sorting"}]})


def test_prepare_only_prints_one_train_command_per_run(tmp_path):
    _corpus(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(_spec()))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "delt_engine",
            "compare",
            "--spec",
            str(tmp_path / "spec.json"),
            "--workspace",
            str(tmp_path / "ws"),
            "--prepare-only",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    commands = out.stdout.strip().splitlines()
    ws = Workspace(tmp_path / "ws")
    (manifest,) = ws.list_comparisons()
    assert len(commands) == len(manifest["runs"]) == 4
    for command, run in zip(commands, manifest["runs"]):
        assert command.endswith(f"-m delt_engine train --run-dir {ws.root.resolve() / 'runs' / run['id']}")
    assert all(i.state == "created" for i in ws.list_runs())  # nothing was trained or queued
    for key in ("validation", "eval_target", "score_target"):
        assert Path(manifest[key]).is_file() and Path(manifest[key]).is_relative_to(ws.root.resolve())
    assert all(pl.read_parquet(run["input"]).height > 0 for run in manifest["runs"])


def test_a_small_target_set_still_splits_into_two_nonempty_parts():
    for n in (2, 3, 5):
        frame = pl.DataFrame({"id": [str(i) for i in range(n)], "text": [f"target text number {i}" for i in range(n)]})
        score_part, eval_part = holdout.split_target(frame, 0.5)
        assert score_part.height >= 1 and eval_part.height >= 1 and score_part.height + eval_part.height == n
        assert holdout.split_target(frame, 0.5)[1]["id"].to_list() == eval_part["id"].to_list()  # by text alone
    with pytest.raises(ValueError, match="at least two different"):
        holdout.split_target(pl.DataFrame({"id": ["a", "b"], "text": ["same", "Same"]}))


def test_model_folders_in_a_spec_resolve_against_the_spec_file(tmp_path, monkeypatch):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    (tmp_path / "specs").mkdir()
    spec_file = tmp_path / "specs" / "s.json"
    spec_file.write_text(
        json.dumps(
            {
                "corpus": "demo",
                "orderings": ["shuffle"],
                "scorer": {"method": "perplexity", "model": "../models/mine"},
                "train": {"model": "../models/mine", "steps": 2},
            }
        )
    )
    monkeypatch.chdir("/")  # run from anywhere: the folders are found next to the spec
    spec = parse_spec(spec_file)
    assert spec.train["model"] == spec.scorer.model == str((tmp_path / "models" / "mine").resolve())
    other = parse_spec({"corpus": "demo", "orderings": ["shuffle"], "train": {"model": "cpu-demo"}})
    assert other.train["model"] == "cpu-demo"  # presets (and Hub ids) stay as written
