"""The demo generator: sizes, ground truth, consistency with its world, disjoint target and benchmark."""

import difflib
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter

import polars as pl
import pytest

from delt_engine.demo.arith import ITEMS
from delt_engine.demo.bench import ANIMAL_VERBS, VERBS
from delt_engine.demo.generate import DEFAULT_N_DOCS, NOISE_SHARES, ensure_demo, generate_demo, sentences, write_demo
from delt_engine.demo.world import COLOURS, CRAFTS, FOODS, HABITATS, JOBS, MATERIALS
from delt_engine.errors import ConfigError
from tests.conftest import ROOT

CLEAN = ("encyclopedia", "story", "arithmetic", "dialogue")
NOISE = tuple(NOISE_SHARES)
EQUATION = re.compile(r"(\d+) ([-+×÷]) (\d+) = (\d+)")


@pytest.fixture(scope="module")
def demo():
    return generate_demo(seed=0)


def test_default_sizes_columns_and_noise_fraction(demo):
    c = demo.corpus
    assert c.height == DEFAULT_N_DOCS == 2000
    assert c.schema == {"id": pl.Utf8, "text": pl.Utf8, "kind": pl.Utf8, "is_noise": pl.Boolean, "difficulty": pl.Int64}
    assert c["id"].to_list()[:2] == ["demo-00000", "demo-00001"] and c["id"].n_unique() == 2000
    assert int(c["is_noise"].sum()) == 500
    assert set(c.filter(pl.col("is_noise"))["kind"]) == set(NOISE)
    assert set(c.filter(~pl.col("is_noise"))["kind"]) == set(CLEAN)
    assert set(c["difficulty"]) == {1, 2, 3}
    assert demo.target.height == 200 and not demo.target["is_noise"].any()
    assert set(demo.target["kind"]) == set(CLEAN)
    assert Counter(demo.benchmark["task"]) == {"facts": 100, "arithmetic": 100, "grammar": 100}


def test_lengths_are_moderate_and_spread(demo):
    words = [len(t.split()) for t in demo.corpus["text"]]
    assert 35 <= sum(words) / len(words) <= 80
    assert max(words) <= 300 and min(words) >= 3
    by_difficulty = (
        demo.corpus.filter(~pl.col("is_noise"))
        .group_by("difficulty")
        .agg(pl.col("text").str.split(" ").list.len().mean().alias("w"))
        .sort("difficulty")["w"]
        .to_list()
    )
    assert by_difficulty == sorted(by_difficulty)  # harder documents are longer


def test_noise_is_spread_through_the_file(demo):
    noise = demo.corpus["is_noise"].to_list()
    for q in range(4):
        share = sum(noise[q * 500 : (q + 1) * 500]) / 500
        assert 0.15 < share < 0.35


def test_texts_unique_except_planted_duplicates(demo):
    c = demo.corpus
    rest = c.filter(pl.col("kind") != "duplicate")["text"]
    assert rest.n_unique() == rest.len()
    clean_texts = set(c.filter(~pl.col("is_noise"))["text"])
    assert all(t in clean_texts for t in c.filter(pl.col("kind") == "duplicate")["text"])


def test_small_sizes_and_no_noise():
    small = generate_demo(seed=1, n_docs=20, n_target=5, n_benchmark=6)
    assert small.corpus.height == 20 and int(small.corpus["is_noise"].sum()) == 5
    assert small.target.height == 5 and small.benchmark.height == 6
    clean = generate_demo(seed=1, n_docs=40, noise_fraction=0.0, n_target=5, n_benchmark=3)
    assert not clean.corpus["is_noise"].any()
    noisy = generate_demo(seed=1, n_docs=100, noise_fraction=0.9, n_target=5, n_benchmark=3)
    assert int(noisy.corpus["is_noise"].sum()) == 90


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_docs": 19},
        {"noise_fraction": 0.95},
        {"noise_fraction": -0.1},
        {"n_docs": 2.5},
        {"n_target": 0},
        {"n_benchmark": 2},
        {"n_benchmark": 10**6},
        {"noise_fraction": True},
        {"seed": "a"},
    ],
)
def test_bad_sizes_raise_config_error(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        generate_demo(**kwargs)


# ----------------------------------------------------------------------------- consistency with the world


def _names(world):
    return {
        "town": {t.name: t for t in world.towns},
        "person": {p.full: p for p in world.people},
        "animal": {a.name: a for a in world.animals},
        "object": {t.name: t for t in world.things},
    }


def _found(text, words):
    """The words (or names) occurring in ``text`` as whole words, a plural s allowed, any case."""
    return {w for w in words if re.search(rf"\b{re.escape(w)}s?\b", text, re.IGNORECASE)}


def _subject(text, names):
    """(type, entity) whose name occurs first in an encyclopedic entry."""
    best = None
    for kind, table in names.items():
        for name, entity in table.items():
            m = re.search(rf"\b{re.escape(name)}s?\b", text, re.IGNORECASE)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), kind, entity)
    return best[1], best[2]


def _checks(kind, e, world):
    """(vocabulary, true value) per checked attribute of entity ``e``."""
    if kind == "town":
        return {"river": (world.rivers, e.river), "craft": (CRAFTS, e.craft), "founder": (world.founders, e.founder)}
    if kind == "person":
        return {
            "job": (JOBS, e.job),
            "home": ([t.name for t in world.towns], e.home),
            "pet": ([a.name for a in world.animals], e.pet),
        }
    if kind == "animal":
        return {"colour": (COLOURS, e.colour), "food": (FOODS, e.food), "habitat": (HABITATS, e.habitat)}
    return {"material": (MATERIALS, e.material), "owner": ([p.full for p in world.people], e.owner)}


def _disagreements(text, world, names):
    """Checked facts of the entry's subject that the text states with a value other than the world's."""
    kind, e = _subject(text, names)
    bad = [attr for attr, (vocab, true) in _checks(kind, e, world).items() if not _found(text, vocab) <= {true}]
    if kind == "town" and not set(re.findall(r"\d+", text)) <= {str(e.population), str(e.founded_year)}:
        bad.append("population or year")
    return bad


def test_encyclopedia_entries_agree_with_the_world_and_contradictions_do_not(demo):
    names = _names(demo.world)
    c = demo.corpus
    clean = c.filter(pl.col("kind") == "encyclopedia")["text"].to_list()
    wrong = c.filter(pl.col("kind") == "contradiction")["text"].to_list()
    assert len(clean) > 400 and len(wrong) > 50
    assert [t for t in clean if _disagreements(t, demo.world, names)] == []
    assert [t for t in wrong if not _disagreements(t, demo.world, names)] == []
    target = demo.target.filter(pl.col("kind") == "encyclopedia")["text"].to_list()
    assert [t for t in target if _disagreements(t, demo.world, names)] == []


def test_stories_state_true_jobs_homes_and_pets(demo):
    people = {p.full: p for p in demo.world.people}
    checked = 0
    for text in demo.corpus.filter(pl.col("kind") == "story")["text"]:
        for full, job, home in re.findall(r"^(\w+ \w+) was an? (\w+) in (\w+)\.", text):
            assert (people[full].job, people[full].home) == (job, home)
            checked += 1
        for job, full, home in re.findall(r"^There once was an? (\w+) named (\w+ \w+) who lived in (\w+)\.", text):
            assert (people[full].job, people[full].home) == (job, home)
            checked += 1
        for full, home, pet, pet_name in re.findall(r"^(\w+ \w+) lived in (\w+) with (?:his|her) (\w+), (\w+)\.", text):
            p = people[full]
            assert (p.home, p.pet, p.pet_name) == (home, pet, pet_name)
            checked += 1
    assert checked > 100


def test_arithmetic_is_correct(demo):
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b, "÷": lambda a, b: a / b}
    frames = [demo.corpus.filter(pl.col("kind") == "arithmetic"), demo.target.filter(pl.col("kind") == "arithmetic")]
    for text in pl.concat(frames)["text"]:
        found = EQUATION.findall(text)
        assert found, text
        for a, op, b, c in found:
            assert ops[op](int(a), int(b)) == int(c), text
        assert text.count("=") == len(found), text


def test_near_duplicates_differ_from_a_clean_document_by_a_few_words(demo):
    clean = [t.split(" ") for t in demo.corpus.filter(~pl.col("is_noise"))["text"]]
    near = demo.corpus.filter(pl.col("kind") == "near_duplicate")["text"].to_list()
    assert len(near) >= 50
    for text in near:
        words = text.split(" ")
        best = None
        for src in clean:
            if abs(len(src) - len(words)) > 1:
                continue
            sm = difflib.SequenceMatcher(None, src, words, autojunk=False)
            if sm.quick_ratio() < 0.6:
                continue
            changed = sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in sm.get_opcodes() if tag != "equal")
            best = changed if best is None else min(best, changed)
        assert best is not None and 1 <= best <= 4, text


# ----------------------------------------------------------------------------- target and benchmark


def test_target_is_disjoint_from_the_corpus(demo):
    corpus = demo.corpus["text"].to_list()
    blob = "\n".join(corpus)
    known = {s for t in corpus for s in sentences(t)}
    for text in demo.target["text"]:
        assert text not in blob
        assert any(s not in known for s in sentences(text))  # a new instance, not a recombination


def test_benchmark_does_not_occur_in_training_text(demo):
    blob = "\n".join(demo.corpus["text"].to_list() + demo.target["text"].to_list())
    for item in demo.benchmark.iter_rows(named=True):
        if item["task"] in ("facts", "arithmetic"):  # phrasings and problems never seen in training
            assert item["context"] not in blob, item
        full = (item["context"] + " " + item["choices"][item["answer"]]).strip()
        assert full not in blob, item


def test_benchmark_answers_are_balanced(demo):
    for task, k in (("facts", 4), ("arithmetic", 4), ("grammar", 2)):
        items = demo.benchmark.filter(pl.col("task") == task)
        assert set(items["choices"].list.len()) == {k}
        counts = Counter(items["answer"])
        assert set(counts) == set(range(k)) and max(counts.values()) - min(counts.values()) <= 1


FACT_KEYWORDS = (
    ("river", "river"),
    ("founded", "founder"),
    ("trade that", "craft"),
    ("By trade", "job"),
    ("home town", "home"),
    ("pet", "pet"),
    ("colour", "colour"),
    ("food", "food"),
    ("Wild", "habitat"),
    ("material", "material"),
    ("owner", "owner"),
)


def test_fact_answers_are_true_in_the_world(demo):
    names = _names(demo.world)
    for item in demo.benchmark.filter(pl.col("task") == "facts").iter_rows(named=True):
        ctx = item["context"]
        entity = next(
            e for table in names.values() for name, e in table.items() if re.search(rf"\b{re.escape(name)}s?\b", ctx)
        )
        attr = next(a for word, a in FACT_KEYWORDS if word in ctx)
        true = getattr(entity, attr)
        assert item["choices"][item["answer"]] == true
        assert item["choices"].count(true) == 1 and len(set(item["choices"])) == 4


def test_arithmetic_answers_are_correct(demo):
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b}
    for item in demo.benchmark.filter(pl.col("task") == "arithmetic").iter_rows(named=True):
        a, op, b = re.fullmatch(r"(\d+) ([-+×]) (\d+) =", item["context"]).groups()
        values = [int(c) for c in item["choices"]]
        assert values[item["answer"]] == ops[op](int(a), int(b)) and len(set(values)) == 4


def _ungrammatical(sentence, world):
    """A small independent checker for the minimal pairs' phenomena: True when a rule is broken."""
    words = sentence.rstrip(".").split(" ")
    firsts = {p.first for p in world.people}
    third = {v[1] for v in VERBS} | {v[1] for v in ANIMAL_VERBS}
    base = {v[0] for v in VERBS} | {v[0] for v in ANIMAL_VERBS}
    past = {v[2] for v in VERBS}
    if words[0] in ("Her", "Him") or words[-1] in ("she", "he"):
        return True
    if "did" in words and words[words.index("did") + 2] in past - base:
        return True
    singulars = {sg for sg, _ in ITEMS}
    if "bought" in words and words[words.index("bought") + 2] in singulars:
        return True
    plural_subject = words[0] == "The" or (len(words) > 2 and words[1] == "and")
    verb_at = 3 if words[1] == "and" else 4 if words[0] == "The" else 1
    if words[0] in firsts and words[1] not in ("and", "did", "bought", "gave"):
        verb = words[2] if words[1] in ("often", "always", "sometimes", "never") else words[1]
        return verb not in third | past
    if plural_subject:
        return words[verb_at] in third
    return False


def test_grammar_answers_are_the_grammatical_variant(demo):
    for item in demo.benchmark.filter(pl.col("task") == "grammar").iter_rows(named=True):
        full = [(item["context"] + " " + c).strip() for c in item["choices"]]
        good, bad = full[item["answer"]], full[1 - item["answer"]]
        assert not _ungrammatical(good, demo.world), good
        assert _ungrammatical(bad, demo.world), bad
        g, b = good.split(" "), bad.split(" ")
        assert len(g) == len(b) and (sum(x != y for x, y in zip(g, b)) == 1 or sorted(g) == sorted(b))


# ----------------------------------------------------------------------------- determinism and files


def _digest(data):
    h = hashlib.sha256()
    for frame in (data.corpus, data.target, data.benchmark):
        h.update(frame.write_json().encode())
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = write_demo(tmp_path / "a", seed=5, n_docs=120, n_target=10, n_benchmark=12)
    b = write_demo(tmp_path / "b", seed=5, n_docs=120, n_target=10, n_benchmark=12)
    c = write_demo(tmp_path / "c", seed=6, n_docs=120, n_target=10, n_benchmark=12)
    assert set(a) == {"corpus", "target", "benchmark"}
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes()
        assert a[name].read_bytes() != c[name].read_bytes()
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()


def test_output_does_not_depend_on_the_hash_seed():
    code = (
        "import hashlib; from delt_engine.demo.generate import generate_demo; d = generate_demo(3, n_docs=150, "
        "n_target=10, n_benchmark=9); print(hashlib.sha256((d.corpus.write_json() + d.target.write_json() "
        "+ d.benchmark.write_json()).encode()).hexdigest())"
    )
    outs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        outs.add(out.stdout.strip())
    assert outs == {_digest(generate_demo(3, n_docs=150, n_target=10, n_benchmark=9))}


def test_written_files_and_manifest(tmp_path):
    paths = write_demo(tmp_path, seed=2, n_docs=60, n_target=8, n_benchmark=9)
    rows = [json.loads(line) for line in paths["corpus"].read_text().splitlines()]
    assert len(rows) == 60 and set(rows[0]) == {"id", "text", "kind", "is_noise", "difficulty"}
    item = json.loads(paths["benchmark"].read_text().splitlines()[0])
    assert set(item) == {"id", "task", "context", "choices", "answer"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["seed"] == 2 and manifest["n_docs"] == 60 and manifest["n_noise"] == 15
    assert sum(manifest["counts"]["corpus"].values()) == 60
    assert manifest["counts"]["corpus"] == dict(Counter(r["kind"] for r in rows))


def test_ensure_demo_writes_once_and_repairs(tmp_path):
    folder = ensure_demo(tmp_path, seed=0, n_docs=40)
    assert folder == tmp_path / "datasets" / "demo-s0-n40"
    corpus = folder / "corpus.jsonl"
    stamp = corpus.stat().st_mtime_ns
    assert ensure_demo(tmp_path, seed=0, n_docs=40) == folder
    assert corpus.stat().st_mtime_ns == stamp  # not regenerated
    original = corpus.read_bytes()
    corpus.write_text("damaged\n")
    ensure_demo(tmp_path, seed=0, n_docs=40)
    assert corpus.read_bytes() == original
    with pytest.raises(ConfigError):
        ensure_demo(tmp_path, n_docs=3)
