"""Duplicate removal: exact (normalised text) and near (MinHash + LSH + exact check) against brute force.

The brute-force references here are written independently of the engine: regex normalisation, string
shingles, Python-int hashes from the documented formulas, numerical integrals of the S-curve.
"""

import math
import random
import re

import numpy as np
import polars as pl
import pytest

from delt_engine.data.dedup import DedupConfig, drop_duplicates, find_duplicates, normalize
from delt_engine.data.minhash import lsh_parameters, permutations, shingle_hashes, signatures, word_hashes
from delt_engine.errors import ConfigError

WORDS = [f"w{i}" for i in range(400)]
M64 = (1 << 64) - 1
_SPACE = re.compile(r"\s+")


def doc(rng: random.Random, n: int = 60) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def edit(text: str, rng: random.Random, changes: int) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), changes):
        words[i] = rng.choice(WORDS)
    return " ".join(words)


def ref_normalize(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


def shingle_set(text: str, ngram: int) -> set[str]:
    words = ref_normalize(text).split(" ")
    if len(words) <= ngram:
        return {" ".join(words)}
    return {" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    x, y = shingle_set(a, ngram), shingle_set(b, ngram)
    return len(x & y) / len(x | y)


# ---- the documented hash formulas, in plain Python integers -----------------------------------------


def mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def ref_word_hash(word: str) -> int:
    data = word.encode("utf-8", "surrogatepass")
    h = mix64(len(data) ^ 0x5851F42D4C957F2D)
    for k in range(0, max(len(data), 1), 8):
        h = mix64(h ^ int.from_bytes(data[k : k + 8].ljust(8, b"\0"), "little"))
    return h


def ref_shingle_hash(words: list[str]) -> int:
    h = 0
    for w in words:
        h = (h * 0x9E3779B97F4A7C15 + ref_word_hash(w)) & M64
    return h


def ref_permutations(n: int, seed: int) -> list[tuple[int, int]]:
    state, stream = seed, []
    for _ in range(2 * n):
        state = (state + 0x9E3779B97F4A7C15) & M64
        stream.append(mix64(state))
    return [((stream[2 * j] >> 32) | 1, stream[2 * j + 1] >> 32) for j in range(n)]


def ref_signature(text: str, ngram: int, num_perm: int, seed: int) -> list[int]:
    words = ref_normalize(text).split(" ")
    grams = [words] if len(words) <= ngram else [words[i : i + ngram] for i in range(len(words) - ngram + 1)]
    keys = [ref_shingle_hash(g) >> 32 for g in grams]
    return [min((a * x + b) & 0xFFFFFFFF for x in keys) for a, b in ref_permutations(num_perm, seed)]


# ---- exact mode ---------------------------------------------------------------------------------------


def test_exact_keeps_the_first_of_each_normalised_text():
    texts = ["The cat sat.", "A dog ran.", "the  CAT sat.", "Other text", "A dog ran.", "the cat sat.\n"]
    res = find_duplicates(texts, "exact")
    assert res.duplicate.tolist() == [False, False, True, False, True, True]
    assert res.of.tolist() == [-1, -1, 0, -1, 1, 0]
    frame = pl.DataFrame({"id": list("abcdef"), "text": texts})
    kept, info = drop_duplicates(frame, "exact")
    assert kept["id"].to_list() == ["a", "b", "d"] and info.n_dropped == 3
    assert frame.height == 6  # the input frame is not modified


def test_normalize_is_the_regex_definition_for_every_whitespace_character():
    # the fast path relies on: whitespace other than " " is never printable, and lower() never makes any
    chars = [chr(c) for c in range(0x110000)]
    spaces = [c for c in chars if c.isspace()]
    assert {c for c in spaces if c.isprintable()} == {" "}
    assert not [c for c in chars if not c.isspace() and any(x.isspace() for x in c.lower())]
    assert len(spaces) > 20  # \t \n ... NBSP, ideographic space, line/paragraph separators
    for s in spaces:
        for text in (f"A{s}b", f"{s}A b{s}", f"a{s}{s} B", f"ÉTÉ{s}İ{s}Σ", s, f"a {s}b"):
            assert normalize(text) == ref_normalize(text), repr(text)
    for text in ("", " ", "already normal", "Mixed Case", "double  space", " lead", "trail ", "tab\tx"):
        assert normalize(text) == ref_normalize(text)


# ---- hashes: the documented formulas, pinned ----------------------------------------------------------


def test_word_and_shingle_hashes_follow_the_documented_formula():
    rng = random.Random(3)
    alphabet = "abcXYZ0é€Ω日本 \x00"
    words = [
        "",
        "a",
        "hello",
        "naïve",
        "x" * 8,
        "y" * 9,
        "z" * 16,
        "w" * 17,
        "\ud800lone",
        "q" * 63,
        "r" * 64,
        "é" * 40,
        "long" * 100,
    ]
    words += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    assert word_hashes(words).tolist() == [ref_word_hash(w) for w in words]
    texts = [
        "the quick brown fox jumps over the lazy dog",
        "hi there",
        "",
        "one two three four five",
        "héllo wörld ελληνικά 日本語 テキスト です ね",
    ]
    hashes, offsets = shingle_hashes(texts, 3)
    for i, text in enumerate(texts):
        words = text.split(" ")
        grams = [words] if len(words) <= 3 else [words[k : k + 3] for k in range(len(words) - 2)]
        assert hashes[offsets[i] : offsets[i + 1]].tolist() == [ref_shingle_hash(g) for g in grams]


def test_hash_helpers_on_empty_and_unnormalised_input():
    hashes, offsets = shingle_hashes([], 5)
    assert hashes.tolist() == [] and offsets.tolist() == [0]
    assert signatures(hashes, offsets, 4).shape == (4, 0)
    with pytest.raises(ValueError, match="normalised"):
        shingle_hashes(["a\nb", "c"], 2)


def test_pinned_hash_and_signature_values():
    """Known values: a change here silently changes which documents every saved spec drops."""
    assert [hex(v) for v in word_hashes(["hello", "", "naïve", "a" * 20, "Ω≈ç√"]).tolist()] == [
        "0x65896ab10529f6fe",
        "0x4a042d1dc9e67966",
        "0x20a44e56b49352e5",
        "0x7f93ef8f0be7cb12",
        "0xdf94059701770c5d",
    ]
    hashes, offsets = shingle_hashes(["the quick brown fox jumps over the lazy dog", "hi there"], 5)
    assert offsets.tolist() == [0, 5, 6]
    assert [hex(v) for v in hashes.tolist()] == [
        "0x28760c54cb96f0c2",
        "0x172df967919d77b9",
        "0x9104900bf0f3b729",
        "0xdc7e77b12d8d1282",
        "0xc20082e65d04687",
        "0x549fcb5e428566d3",
    ]
    a, b = permutations(3, seed=0)
    assert a.tolist() == [3793791033, 113532185, 456755563] and b.tolist() == [1853398634, 4169906344, 1405853452]
    assert signatures(hashes, offsets, 4, seed=0).T.tolist() == [
        [1852041437, 568146726, 57277465, 321330451],
        [2336396888, 822065878, 1750658390, 1993300572],
    ]
    assert signatures(hashes, offsets, 4, seed=7).T.tolist() == [
        [962009083, 890388731, 12178423, 59023522],
        [3330590189, 1617421774, 4169022296, 3652826223],
    ]


def test_signatures_match_the_definition_across_blocks_and_threads():
    rng = random.Random(5)
    texts = [normalize(doc(rng, rng.randint(1, 300))) for _ in range(1500)]  # > 100k shingles: several threads
    hashes, offsets = shingle_hashes(texts, 4)
    sig = signatures(hashes, offsets, 16, seed=11)
    for i in rng.sample(range(len(texts)), 40):
        assert sig[:, i].tolist() == ref_signature(texts[i], 4, 16, 11)
    assert (signatures(hashes, offsets, 8, seed=11) == sig[:8]).all()  # fewer maps: a prefix of the stream


def test_band_collisions_follow_the_s_curve():
    """Independent minima: per-row agreement rate = Jaccard, and a band of r rows agrees at J^r."""
    rng = random.Random(8)
    texts = []
    for p in range(600):  # 600 pairs of 100-word sets sharing 60 words: J = 60 / 140
        words = [f"p{p}x{k}" for k in range(140)]
        rng.shuffle(words)
        texts += [" ".join(words[:100]), " ".join(words[40:])]
    hashes, offsets = shingle_hashes(texts, 1)
    sig = signatures(hashes, offsets, 120, seed=2)
    agree = sig[:, 0::2] == sig[:, 1::2]  # [120 rows, 600 pairs]
    j = 60 / 140
    assert abs(agree.mean() - j) < 0.01
    bands = agree.reshape(40, 3, 600).all(axis=1)  # 40 bands of 3 rows
    assert abs(bands.mean() - j**3) < 0.01
    # rows are not correlated: the number of agreeing rows per pair spreads like Binomial(120, J)
    assert abs(agree.sum(axis=0).std() - math.sqrt(120 * j * (1 - j))) < 0.8


# ---- the choice of bands and rows ---------------------------------------------------------------------


def s_curve(s: float, b: int, r: int) -> float:
    return 1 - (1 - s**r) ** b


def test_bands_and_rows_promise_the_recall_at_threshold_plus_margin():
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        b, r = lsh_parameters(t, 128)
        assert b * r <= 128
        assert s_curve(t + 0.05, b, r) >= 0.95, (t, b, r)
    assert lsh_parameters(0.7, 128) == (21, 6)
    for num_perm in (1, 2, 3, 7, 16, 100):
        b, r = lsh_parameters(0.8, num_perm)
        assert 1 <= b * r <= num_perm


@pytest.mark.parametrize("t", [0.5, 0.8])
def test_bands_and_rows_minimise_the_documented_cost(t):
    n = 4000  # midpoint rule, independent of the engine's trapezoid on 501 points
    above = [t + (1 - t) * (k + 0.5) / n for k in range(n)]
    below = [t * (k + 0.5) / n for k in range(n)]

    def cost(b, r):
        missed = sum(1 - s_curve(s, b, r) for s in above) * (1 - t) / n
        extra = sum(s_curve(s, b, r) for s in below) * t / n
        return missed + 0.05 * extra

    chosen = cost(*lsh_parameters(t, 32))
    every = [cost(b, r) for r in range(1, 33) for b in range(1, 32 // r + 1)]
    assert chosen <= min(every) + 1e-6


# ---- near mode ----------------------------------------------------------------------------------------


def corpus(seed: int) -> list[str]:
    rng = random.Random(seed)
    base = [doc(rng) for _ in range(30)]
    texts = list(base)
    for _ in range(40):  # variants of random earlier documents, from 1 to 30 changed words
        texts.append(edit(rng.choice(texts), rng, rng.choice([1, 2, 3, 5, 8, 10, 20, 30])))
    texts += [texts[3].upper(), " ".join(texts[5].split()[:3])]  # an exact copy, a short one
    rng.shuffle(texts)
    return texts


@pytest.mark.parametrize("seed,threshold,ngram", [(0, 0.7, 5), (1, 0.5, 5), (2, 0.9, 3), (3, 0.6, 2)])
def test_near_matches_brute_force_jaccard(seed, threshold, ngram):
    texts = corpus(seed)
    res = find_duplicates(texts, "near", threshold=threshold, ngram=ngram)
    norm = [ref_normalize(t) for t in texts]
    truth = np.array([[jaccard(a, b, ngram) for b in texts] for a in texts])
    for i in range(len(texts)):
        best = max((truth[i, j] for j in range(i)), default=0.0)
        exact = norm[i] in norm[:i]
        if res.duplicate[i]:
            root = res.of[i]
            assert root < i and not res.duplicate[root]
            if exact:
                assert root == norm.index(norm[i])
            else:  # the exact check: a similar earlier document really exists, in root's group
                assert any(truth[i, j] >= threshold and (j == root or res.of[j] == root) for j in range(i))
        else:
            assert not exact
            assert best < threshold + 0.1, f"document {i} has Jaccard {best:.2f} with an earlier one but was kept"
    # no document below the threshold with every earlier one is marked, and the test has teeth
    marked_wrongly = [
        i for i in range(len(texts)) if res.duplicate[i] and norm[i] not in norm[:i] and max(truth[i, :i]) < threshold
    ]
    assert not marked_wrongly
    positives = sum(norm[i] in norm[:i] or max(truth[i, :i], default=0) >= threshold for i in range(len(texts)))
    assert 3 <= res.n_dropped <= positives < len(texts) - 20  # the test has teeth: some found, many kept


def test_near_keeps_first_occurrence_and_follows_chains():
    rng = random.Random(4)
    a = doc(rng, 80)
    b = edit(a, rng, 2)  # close to a
    c = edit(b, rng, 2)  # close to b, maybe less to a
    other = doc(rng, 80)
    res = find_duplicates([a, other, b, c], "near", threshold=0.7)
    assert res.duplicate.tolist() == [False, False, True, True]
    assert res.of.tolist() == [-1, -1, 0, 0]  # c points at the kept original, not at b


def test_an_exact_copy_of_a_near_copy_points_at_the_kept_original():
    rng = random.Random(3)
    a = doc(rng, 80)
    b = edit(a, rng, 1)
    for mode in ("near", "edit"):
        res = find_duplicates([a, b, doc(rng), b.upper()], mode)
        assert res.of.tolist() == [-1, 0, -1, 0], mode  # not 1, a dropped document


def test_near_includes_exact_and_leaves_unrelated_text():
    rng = random.Random(1)
    a, b = doc(rng), doc(rng)
    res = find_duplicates([a, b, a.upper(), edit(a, rng, 1)], "near")
    assert res.duplicate.tolist() == [False, False, True, True] and res.of.tolist() == [-1, -1, 0, 0]
    short = find_duplicates(["hi there", "hi there", "bye"], "near")  # shorter than an n-gram: whole text
    assert short.duplicate.tolist() == [False, True, False]


def test_edge_cases():
    assert find_duplicates([], "near").duplicate.tolist() == []
    assert find_duplicates(["only one"], "near").of.tolist() == [-1]
    empty = find_duplicates(["", "  ", "a", "\n", "a b c d e f"], "near")
    assert empty.duplicate.tolist() == [False, True, False, True, False]
    # shorter than ngram: one shingle, the whole text; "a b" and "a b c" share no shingle
    assert find_duplicates(["a b", "a b c", "x"], "near", threshold=0.3).n_dropped == 0
    uni = [
        "Ελληνικά κείμενα με πολλές λέξεις εδώ και εκεί πάντα",
        "ελληνικά ΚΕΊΜΕΝΑ με πολλές λέξεις εδώ και εκεί πάντα",
        "日本語 の テキスト です ね 本当 に そう です よ",
        "日本語 の テキスト です ね 本当 に そう です か",
    ]
    res = find_duplicates(uni, "near", threshold=0.5, ngram=2)
    assert res.duplicate.tolist() == [False, True, False, True]  # case folded; 7 of 9 bigrams shared
    lone = find_duplicates(["a\ud800b c d e f g h", "a\ud800b c d e f g h i", "x"], "near", threshold=0.5)
    assert lone.duplicate.tolist() == [False, True, False]


def test_threshold_one_marks_only_identical_shingle_sets():
    texts = ["a b a b a b", "a b a b a b a b", "a b a b a c", "b a b a"]
    res = find_duplicates(texts, "near", threshold=1.0, ngram=2)
    assert res.duplicate.tolist() == [False, True, False, True]  # {ab, ba} twice more; "a c" breaks it


@pytest.mark.parametrize("num_perm", [1, 2, 5])
def test_small_num_perm_still_never_marks_below_threshold(num_perm):
    texts = corpus(6)
    res = find_duplicates(texts, "near", threshold=0.7, num_perm=num_perm)
    norm = [ref_normalize(t) for t in texts]
    for i in np.flatnonzero(res.duplicate):
        assert norm[i] in norm[:i] or max(jaccard(texts[i], texts[j]) for j in range(i)) >= 0.7


def test_seed_changes_the_maps_not_the_verdict_on_clear_cases():
    rng = random.Random(9)
    a = doc(rng, 100)
    texts = [a, doc(rng, 100), edit(a, rng, 1), doc(rng, 100)]
    for seed in (0, 1, 12345):
        assert find_duplicates(texts, "near", seed=seed).duplicate.tolist() == [False, False, True, False]


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"mode": "fuzzy"}, "mode"),
        ({"threshold": 0}, "threshold"),
        ({"ngram": 0}, "ngram"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "0.7"}, "threshold"),
        ({"num_perm": 0}, "num_perm"),
        ({"num_perm": 2.5}, "num_perm"),
        ({"ngram": True}, "ngram"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        find_duplicates(["a", "b"], **kwargs)
    with pytest.raises(ConfigError, match="no text column 'body'"):
        drop_duplicates(pl.DataFrame({"text": ["a"]}), text_field="body")


def test_signature_filter_cutoff_is_the_binomial_tail():
    from delt_engine.data.minhash import _min_agreements

    for k, t in ((128, 0.5), (128, 0.7), (81, 0.3), (126, 0.9), (8, 0.7)):
        c = _min_agreements(k, t)
        tail = sum(math.comb(k, x) * t**x * (1 - t) ** (k - x) for x in range(c))
        more = tail + math.comb(k, c) * t**c * (1 - t) ** (k - c)
        assert tail <= 1e-4 < more  # the largest count whose lower tail stays within the risk
    assert _min_agreements(128, 1.0) == 128 and _min_agreements(4, 0.5) == 0


def test_crowded_buckets_still_find_the_copies(monkeypatch):
    """Documents sharing a long header crowd the LSH buckets: the bucket window and the cap on exact
    checks bound the work, and planted copies are still found with nothing below the threshold marked."""
    import delt_engine.data.minhash as dedup

    monkeypatch.setattr(dedup, "_BUCKET_WINDOW", 8)
    monkeypatch.setattr(dedup, "_MAX_CHECKS", 3)
    rng = random.Random(12)
    header = doc(rng, 40)
    texts = [header + " " + " ".join(f"u{d}x{k}" for k in range(60)) for d in range(300)]  # J ~ 0.23
    for src in rng.sample(range(300), 20):  # copies with 2 of 100 words changed (J ~ 0.8), later on
        words = texts[src].split()
        for i in rng.sample(range(40, 100), 2):
            words[i] = "changed"
        texts.insert(rng.randrange(texts.index(texts[src]) + 1, len(texts) + 1), " ".join(words))
    planted = [i for i, text in enumerate(texts) if "changed" in text]
    for t in (0.3, 0.5, 0.7):
        res = find_duplicates(texts, "near", threshold=t)
        assert res.n_dropped == 20 and all(res.duplicate[p] for p in planted), t


def test_dedup_config_reads_and_writes_the_spec_format():
    near = DedupConfig.from_dict({"mode": "near", "threshold": 0.8, "ngram": 3})
    assert near.to_dict() == {"mode": "near", "threshold": 0.8, "ngram": 3}
    assert DedupConfig.from_dict({"mode": "exact"}).to_dict() == {"mode": "exact"}
    with pytest.raises(ConfigError, match="unknown dedup key"):
        DedupConfig.from_dict({"mode": "near", "treshold": 0.8})
    with pytest.raises(ConfigError, match="threshold"):
        DedupConfig(mode="near", threshold=1.5)
    texts = ["the cat sat on the mat today", "The cat sat on the mat today", "a dog"]
    frame = pl.DataFrame({"id": ["a", "b", "c"], "text": texts})
    kept, result = DedupConfig("exact").apply(frame)
    assert kept["id"].to_list() == ["a", "c"] and result.n_dropped == 1


# ---- edit mode ----------------------------------------------------------------------------------------


def ref_edit_similarity(a: str, b: str) -> float:
    """1 - word Levenshtein distance / longer length, by the textbook dynamic programme."""
    x, y = ref_normalize(a).split(" "), ref_normalize(b).split(" ")
    prev = list(range(len(y) + 1))
    for i, wx in enumerate(x, 1):
        row = [i]
        for j, wy in enumerate(y, 1):
            row.append(min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (wx != wy)))
        prev = row
    return 1 - prev[-1] / max(len(x), len(y))


def indel(text: str, rng: random.Random, inserts: int, deletes: int) -> str:
    words = text.split(" ")
    for _ in range(inserts):
        words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS))
    for _ in range(deletes):
        del words[rng.randrange(len(words))]
    return " ".join(words)


def edit_corpus(seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = [doc(rng, rng.choice([8, 15, 30, 60])) for _ in range(30)]
    for _ in range(40):  # variants: substitutions, insertions and deletions in short and long texts
        src = rng.choice(texts)
        n = len(src.split(" "))
        if rng.random() < 0.5:
            texts.append(edit(src, rng, min(n, rng.choice([1, 2, 3, 6, 12]))))
        else:
            texts.append(indel(src, rng, rng.choice([0, 1, 3]), min(n - 1, rng.choice([0, 1, 2, 5]))))
    texts.append(texts[4].upper())
    rng.shuffle(texts)
    return texts


@pytest.mark.parametrize("seed,threshold", [(0, 0.8), (1, 0.7), (2, 0.9), (3, 0.85)])
def test_edit_matches_brute_force_edit_similarity(seed, threshold):
    texts = edit_corpus(seed)
    res = find_duplicates(texts, "edit", threshold=threshold)
    norm = [ref_normalize(t) for t in texts]
    sim = [[ref_edit_similarity(a, b) for b in texts[:i]] for i, a in enumerate(texts)]
    for i in range(len(texts)):
        if res.duplicate[i]:
            root = res.of[i]
            assert root < i and not res.duplicate[root]
            assert any(sim[i][j] >= threshold - 1e-12 and (j == root or res.of[j] == root) for j in range(i))
        else:
            assert norm[i] not in norm[:i]
            best = max(sim[i], default=0.0)
            assert best < threshold + 0.05, f"document {i} has edit similarity {best:.2f} with an earlier one"
    positives = sum(max(s, default=0) >= threshold for s in sim)
    assert 5 <= res.n_dropped <= positives < len(texts) - 15  # the test has teeth: some found, many kept


def test_edit_finds_lightly_edited_short_copies_that_near_misses():
    rng = random.Random(5)
    originals = [doc(rng, 12) for _ in range(20)]
    copies = [edit(t, rng, 1) for t in originals[:10]] + [indel(t, rng, 1, 0) for t in originals[10:]]
    texts = originals + copies
    edit_res = find_duplicates(texts, "edit")  # 11/12 or 12/13 of the words kept: similarity >= 0.91
    assert edit_res.duplicate.tolist() == [False] * 20 + [True] * 20
    assert edit_res.of[20:].tolist() == list(range(20))
    near = find_duplicates(texts, "near")  # one word breaks up to 5 of 8 shingles: only edits near an end pass
    assert near.n_dropped < 10


def test_edit_candidate_jaccard_bounds_spread_substitutions():
    from delt_engine.data.minhash import edit_candidate_jaccard

    rng = random.Random(7)
    for _ in range(200):
        n = rng.randrange(5, 80)
        words = [f"u{k}" for k in range(n)]  # no repeated bigram
        changes = rng.randrange(0, n // 2 + 1)
        other = list(words)
        for k in rng.sample(range(n), changes):
            other[k] = f"v{k}"
        t = 1 - changes / n
        if t <= 0.5:
            continue
        a = {(words[k], words[k + 1]) for k in range(n - 1)}
        b = {(other[k], other[k + 1]) for k in range(n - 1)}
        assert len(a & b) / len(a | b) >= edit_candidate_jaccard(t) - 1e-12
    assert edit_candidate_jaccard(1.0) == 1.0 and edit_candidate_jaccard(0.8) == pytest.approx(1 / 3)  # n = 5


def test_edit_settings_and_spec_format():
    with pytest.raises(ConfigError, match="too low for mode 'edit'"):
        find_duplicates(["a", "b"], "edit", threshold=0.5)
    assert DedupConfig.from_dict({"mode": "edit"}).threshold == 0.8
    assert DedupConfig.from_dict({"mode": "edit"}).to_dict() == {"mode": "edit"}
    assert DedupConfig.from_dict({"mode": "edit", "threshold": 0.9}).to_dict() == {"mode": "edit", "threshold": 0.9}
    assert DedupConfig.from_dict({"mode": "near"}).to_dict() == {"mode": "near"}
    assert "edit similarity >= 0.8" in DedupConfig("edit").label
    texts = ["one two three four five six seven", "one two three four five six eight", "x y"]
    kept, result = DedupConfig("edit").apply(pl.DataFrame({"id": ["a", "b", "c"], "text": texts}))
    assert kept["id"].to_list() == ["a", "c"] and result.of.tolist() == [-1, 0, -1]  # 6 of 7 words: 0.857


def test_scripts_without_spaces_are_compared_character_by_character():
    a = "我们在北京大学学习中文已经三年了，每天早上都去图书馆看书，下午和朋友一起练习口语，晚上写作业。"
    b = a.replace("北京", "上海", 1)  # two characters of 47 changed
    other = "完全不同的一段文字，讲的是另外一件事情，和上面的没有关系。"
    for mode in ("near", "edit"):
        assert find_duplicates([a, other, b], mode).of.tolist() == [-1, -1, 0], mode
    thai = "ภาษาไทยเขียนติดกันโดยไม่มีการเว้นวรรคระหว่างคำแต่ละคำในประโยคยาวนี้"
    assert find_duplicates([thai, thai.replace("ยาว", "สั้น")], "edit").of.tolist() == [-1, 0]
    from delt_engine.data.dedup import split_unspaced

    assert split_unspaced("hello 世界 test") == "hello 世 界 test" and split_unspaced("plain text") == "plain text"
    assert find_duplicates(["日本語", "日本 語"], "exact").n_dropped == 0  # exact mode compares the text as it is
