"""Duplicate removal: exact (normalised text) and near (MinHash + LSH) against brute-force Jaccard."""

import random

import numpy as np
import polars as pl
import pytest

from delt_engine.data.dedup import _shingles, drop_duplicates, find_duplicates, normalize
from delt_engine.errors import ConfigError

WORDS = [f"w{i}" for i in range(400)]


def doc(rng: random.Random, n: int = 60) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def edit(text: str, rng: random.Random, changes: int) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), changes):
        words[i] = rng.choice(WORDS)
    return " ".join(words)


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    x, y = set(_shingles(normalize(a), ngram)), set(_shingles(normalize(b), ngram))
    return len(x & y) / len(x | y)


def test_exact_keeps_the_first_of_each_normalised_text():
    texts = ["The cat sat.", "A dog ran.", "the  CAT sat.", "Other text", "A dog ran.", "the cat sat."]
    res = find_duplicates(texts, "exact")
    assert res.duplicate.tolist() == [False, False, True, False, True, True]
    assert res.of.tolist() == [-1, -1, 0, -1, 1, 0]
    frame = pl.DataFrame({"id": list("abcdef"), "text": texts})
    kept, info = drop_duplicates(frame, "exact")
    assert kept["id"].to_list() == ["a", "b", "d"] and info.n_dropped == 3


def test_near_matches_brute_force_jaccard():
    rng = random.Random(0)
    base = [doc(rng) for _ in range(30)]
    texts = list(base)
    for i in range(30):  # variants of random earlier documents, from 1 to 30 changed words
        texts.append(edit(base[rng.randrange(30)], rng, rng.choice([1, 2, 3, 10, 20, 30])))
    rng.shuffle(texts)
    res = find_duplicates(texts, "near", threshold=0.7, ngram=5, num_perm=128)
    truth = np.array([[jaccard(a, b) for b in texts] for a in texts])
    for i in range(len(texts)):
        best = max((truth[i, j] for j in range(i)), default=0.0)
        if res.duplicate[i]:  # flagged: its original really is similar (MinHash error ~0.1 at 128 hashes)
            j = res.of[i]
            assert j < i and not res.duplicate[j]
            assert max(truth[i, k] for k in range(i) if k == j or res.of[k] == j) >= 0.7 - 0.15
        elif best >= 0.85:  # clearly similar to an earlier document: found
            pytest.fail(f"document {i} has Jaccard {best:.2f} with an earlier one but was kept")
    assert 5 <= res.n_dropped < 30  # the test has teeth: some variants found, the distant ones kept


def test_near_includes_exact_and_leaves_unrelated_text():
    rng = random.Random(1)
    a, b = doc(rng), doc(rng)
    res = find_duplicates([a, b, a.upper(), edit(a, rng, 1)], "near")
    assert res.duplicate.tolist() == [False, False, True, True] and res.of.tolist() == [-1, -1, 0, 0]
    short = find_duplicates(["hi there", "hi there", "bye"], "near")  # shorter than an n-gram: whole text
    assert short.duplicate.tolist() == [False, True, False]


@pytest.mark.parametrize("kwargs,words", [({"mode": "fuzzy"}, "mode"), ({"threshold": 0}, "threshold"),
                                          ({"ngram": 0}, "ngram"), ({"threshold": 1.5}, "threshold")])
def test_bad_settings(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        find_duplicates(["a", "b"], **kwargs)
    with pytest.raises(ConfigError, match="no text column 'body'"):
        drop_duplicates(pl.DataFrame({"text": ["a"]}), text_field="body")
