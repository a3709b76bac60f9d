"""The embedded demo: a generated corpus with planted structure, a clean target set and a benchmark.

The world. A small fictional valley, invented from a seed: about two dozen towns (each on a river, with
a population, a founder and year of founding, and a craft it is known for), about a hundred people
(a job, a home town, a pet and its name, an age), twenty animal species (colour, food, habitat, size)
and forty named objects (kind, material, owner, town where made). Every name is made up by a syllable
generator ("Dalstead", "the Bim", "a vajar", "the Greskon Key"), so no demo text comes from real text.

Clean documents (75% of the corpus by default), each with a difficulty from 1 (short, one fact or
one step) to 3 (long, several paragraphs, related entities, multi-step reasoning):
- encyclopedia: entries stating an entity's facts, always true in the world;
- story: simple coherent stories about a person, their town, pet and neighbours;
- arithmetic: worked problems and drills ("Nokaild has 14 shells and picks 3 more. 14 + 3 = 17. ...");
- dialogue: short conversations between two of the world's people.

Planted low-quality documents (25% by default), made the way such text arises on the web:
- word_salad: the words of a clean document, shuffled;
- char_noise: heavy typos, runs of random characters, or broken-encoding garbage;
- boilerplate: menus, link lists, cookie banners, "click here" and spam lines, often repeated;
- contradiction: an encyclopedic entry with one fact wrong (another town's river, the wrong owner,
  ...), or a fact stated rightly and later again wrongly; written exactly like the clean entries;
- fragment: a few words of a clean text, cut mid-sentence;
- duplicate: an exact copy of a clean corpus document;
- near_duplicate: a clean corpus document with a few words swapped for synonyms.

Every corpus row carries its ground truth: ``kind``, ``is_noise`` and ``difficulty`` (noise rows keep
the difficulty of the clean text they were made from; boilerplate is 1). Rows are shuffled, so noise
is spread through the file. The target set (for LQS's target loss J) holds new clean documents of the
same kinds, none of them in the corpus. The benchmark asks multiple-choice questions about the world
(``facts``), sums (``arithmetic``) and grammatical minimal pairs (``grammar``) in phrasings that never
occur in the corpus. Same seed and sizes, same files, byte for byte.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..errors import ConfigError, DataError
from ..fileio import read_json, write_json, write_jsonl
from .arith import arithmetic
from .bench import benchmark_items
from .facts import contradiction, encyclopedia
from .noise import boilerplate, char_noise, fragment, near_duplicate, word_salad
from .stories import dialogue, story
from .world import Rng, World, build_world

DEFAULT_N_DOCS = 2000
DEFAULT_N_TARGET = 200
DEFAULT_N_BENCHMARK = 300
DEFAULT_NOISE_FRACTION = 0.25
GENERATOR_VERSION = 1  # bump when the generated text changes, so cached demo folders are rebuilt
MAX_N_DOCS = 100_000
MAX_N_BENCHMARK = 1500
WORLD_DOCS = 4000  # corpora larger than this get a proportionally larger world (facts stay varied)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_ARTICLE = re.compile(r"\b([Aa]) ([aeiouAEIOU]\w)")

CLEAN_KINDS: dict[str, tuple[float, Callable]] = {
    "encyclopedia": (0.35, encyclopedia),
    "story": (0.30, story),
    "arithmetic": (0.20, arithmetic),
    "dialogue": (0.15, dialogue),
}
NOISE_SHARES = {
    "word_salad": 0.15,
    "char_noise": 0.15,
    "boilerplate": 0.14,
    "contradiction": 0.16,
    "fragment": 0.12,
    "duplicate": 0.14,
    "near_duplicate": 0.14,
}
DIFFICULTY_WEIGHTS = (0.40, 0.35, 0.25)  # difficulty 1, 2, 3
CORPUS_SCHEMA = {"id": pl.Utf8, "text": pl.Utf8, "kind": pl.Utf8, "is_noise": pl.Boolean, "difficulty": pl.Int64}
BENCHMARK_SCHEMA = {"id": pl.Utf8, "task": pl.Utf8, "context": pl.Utf8, "choices": pl.List(pl.Utf8), "answer": pl.Int64}


@dataclass
class DemoData:
    """The generated demo: corpus, target set and benchmark (polars frames) and the world behind them."""

    corpus: pl.DataFrame  # id, text, kind, is_noise, difficulty
    target: pl.DataFrame  # same columns, clean documents only
    benchmark: pl.DataFrame  # id, task, context, choices, answer
    world: World
    seed: int
    noise_fraction: float


def _allocate(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Split ``n`` over the keys in proportion to ``shares`` (largest remainder; sums to exactly n)."""
    total = sum(shares.values())
    raw = {k: n * v / total for k, v in shares.items()}
    counts = {k: int(r) for k, r in raw.items()}
    by_remainder = sorted(shares, key=lambda k: (-(raw[k] - counts[k]), list(shares).index(k)))
    for k in by_remainder[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _fresh(
    make: Callable[[], tuple[str, int]], taken: set[str], what: str, reject: Callable[[str], bool] | None = None
) -> tuple[str, int]:
    """A (text, difficulty) from ``make`` whose text is not in ``taken`` (then added) nor rejected."""
    for _ in range(200):
        text, difficulty = make()
        if text not in taken and not (reject and reject(text)):
            taken.add(text)
            return text, difficulty
    raise DataError(f"the demo world cannot make enough distinct {what} documents; ask for fewer documents")


def _difficulty(rng: Rng) -> int:
    return rng.weighted((1, 2, 3), DIFFICULTY_WEIGHTS)


def fix_articles(text: str) -> str:
    """'a iron bell' -> 'an iron bell': templates say "a {word}" and some words start with a vowel."""
    return _ARTICLE.sub(lambda m: m.group(1) + "n " + m.group(2), text)


def _clean_doc(kind: str, world: World, rng: Rng) -> tuple[str, int]:
    d = _difficulty(rng)
    return fix_articles(CLEAN_KINDS[kind][1](world, rng, d)), d


def _clean_docs(
    world: World, rng: Rng, n: int, taken: set[str], reject: Callable[[str], bool] | None = None
) -> list[dict]:
    """``n`` distinct clean documents in the kind shares of CLEAN_KINDS (none that ``reject`` refuses)."""
    docs = []
    for kind, count in _allocate(n, {k: v[0] for k, v in CLEAN_KINDS.items()}).items():
        for _ in range(count):
            text, d = _fresh(lambda: _clean_doc(kind, world, rng), taken, kind, reject)
            docs.append({"text": text, "kind": kind, "is_noise": False, "difficulty": d})
    return docs


def _noise_doc(kind: str, world: World, rng: Rng, clean: list[dict]) -> tuple[str, int]:
    """One planted document of ``kind`` and the difficulty of the text it was made from."""
    if kind == "boilerplate":
        return boilerplate(world, rng), 1
    if kind == "contradiction":
        d = _difficulty(rng)
        return fix_articles(contradiction(world, rng, d)), d
    if kind in ("duplicate", "near_duplicate"):
        src = rng.pick(clean)
        return (src["text"] if kind == "duplicate" else near_duplicate(src["text"], rng)), src["difficulty"]
    # Salad, character noise and fragments come from new clean texts, not from corpus documents.
    text, d = _clean_doc(rng.weighted(list(CLEAN_KINDS), [v[0] for v in CLEAN_KINDS.values()]), world, rng)
    return {"word_salad": word_salad, "char_noise": char_noise, "fragment": fragment}[kind](text, rng), d


def _noise_docs(world: World, rng: Rng, n: int, clean: list[dict], taken: set[str]) -> list[dict]:
    docs = []
    for kind, count in _allocate(n, NOISE_SHARES).items():
        for _ in range(count):
            if kind == "duplicate":  # the one kind whose text repeats another document's
                text, d = _noise_doc(kind, world, rng, clean)
            else:
                text, d = _fresh(lambda: _noise_doc(kind, world, rng, clean), taken, kind)
            docs.append({"text": text, "kind": kind, "is_noise": True, "difficulty": d})
    return docs


def sentences(text: str) -> list[str]:
    """The sentences (and dialogue lines) of a text, stripped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _seen_in(texts: list[str]) -> Callable[[str], bool]:
    """Refuses target texts that occur inside a corpus text or are made only of corpus sentences."""
    known = {s for t in texts for s in sentences(t)}
    blob = "\n".join(texts)
    # The sentence test first: it is cheap and refuses most; the substring scan runs on the survivors.
    return lambda text: all(s in known for s in sentences(text)) or text in blob


def _frame(docs: list[dict], prefix: str) -> pl.DataFrame:
    width = max(5, len(str(len(docs) - 1)))
    rows = [{"id": f"{prefix}-{i:0{width}d}", **doc} for i, doc in enumerate(docs)]
    return pl.DataFrame(rows, schema=CORPUS_SCHEMA)


def _check_sizes(seed, n_docs, noise_fraction, n_target, n_benchmark) -> None:
    def whole(name, value, lo, hi, fix):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{name}={value!r} is out of range; use an integer from {lo} to {hi} ({fix})")

    whole("seed", seed, -(2**63), 2**63 - 1, "any integer")
    whole("n_docs", n_docs, 20, MAX_N_DOCS, f"default {DEFAULT_N_DOCS}")
    whole("n_target", n_target, 1, 20_000, f"default {DEFAULT_N_TARGET}")
    whole("n_benchmark", n_benchmark, 3, MAX_N_BENCHMARK, f"default {DEFAULT_N_BENCHMARK}")
    if (
        isinstance(noise_fraction, bool)
        or not isinstance(noise_fraction, (int, float))
        or not 0.0 <= noise_fraction <= 0.9
    ):
        raise ConfigError(
            f"noise_fraction={noise_fraction!r} is out of range; use a number from 0 to 0.9 "
            f"(default {DEFAULT_NOISE_FRACTION})"
        )


def generate_demo(
    seed: int = 0,
    n_docs: int | None = None,
    noise_fraction: float = DEFAULT_NOISE_FRACTION,
    n_target: int | None = None,
    n_benchmark: int | None = None,
) -> DemoData:
    """Generate the demo corpus, target set and benchmark (deterministic in all arguments; no network).

    Args:
        seed: world and text seed.
        n_docs: corpus size (default DEFAULT_N_DOCS = 2000); at least 20.
        noise_fraction: share of planted low-quality documents, 0..0.9 (rounded to whole documents).
        n_target: clean target documents (default 200), none of them in the corpus.
        n_benchmark: benchmark items (default 300), split evenly over facts, arithmetic and grammar.

    Returns:
        DemoData with polars frames ``corpus`` (shuffled; ids "demo-00000", ...), ``target`` (ids
        "target-00000", ...), ``benchmark`` and the ``world``.

    Raises:
        ConfigError: a size or the noise fraction is out of range.
    """
    n_docs = DEFAULT_N_DOCS if n_docs is None else n_docs
    n_target = DEFAULT_N_TARGET if n_target is None else n_target
    n_benchmark = DEFAULT_N_BENCHMARK if n_benchmark is None else n_benchmark
    _check_sizes(seed, n_docs, noise_fraction, n_target, n_benchmark)
    world = build_world(seed, scale=max(1.0, n_docs / WORLD_DOCS))
    n_noise = int(round(n_docs * noise_fraction))
    taken: set[str] = {""}
    clean = _clean_docs(world, Rng("corpus", seed), n_docs - n_noise, taken)
    docs = clean + _noise_docs(world, Rng("noise", seed), n_noise, clean, taken)
    Rng("shuffle", seed).shuffle(docs)
    corpus = _frame(docs, "demo")
    texts = corpus["text"].to_list()
    target = _frame(_clean_docs(world, Rng("target", seed), n_target, set(taken), _seen_in(texts)), "target")
    seen = "\n".join(texts + target["text"].to_list())  # benchmark phrasings must not occur in here
    items = benchmark_items(world, n_benchmark, Rng("benchmark", seed), seen)
    benchmark = pl.DataFrame(items, schema=BENCHMARK_SCHEMA)
    return DemoData(corpus, target, benchmark, world, seed, float(noise_fraction))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


FILES = ("corpus", "target", "benchmark")


def write_demo(out_dir: str | Path, seed: int = 0, n_docs: int | None = None, **kw) -> dict[str, Path]:
    """Generate the demo and write ``corpus.jsonl``, ``target.jsonl``, ``benchmark.jsonl`` and
    ``manifest.json`` (seed, sizes, counts per kind, file hashes) into ``out_dir`` (atomic writes).

    Args:
        out_dir: folder (created when missing).
        seed, n_docs, **kw: as ``generate_demo`` (noise_fraction, n_target, n_benchmark).

    Returns:
        {"corpus": path, "target": path, "benchmark": path} (the manifest is ``out_dir/manifest.json``).
    """
    data = generate_demo(seed=seed, n_docs=n_docs, **kw)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.jsonl" for name in FILES}
    for name in FILES:
        write_jsonl(paths[name], getattr(data, name).to_dicts())
    write_json(out / "manifest.json", _manifest(data, paths))
    return paths


def _manifest(data: DemoData, paths: dict[str, Path]) -> dict:
    return {
        "generator": "delt_engine.demo",
        "version": GENERATOR_VERSION,
        "seed": data.seed,
        "n_docs": data.corpus.height,
        "noise_fraction": data.noise_fraction,
        "n_target": data.target.height,
        "n_benchmark": data.benchmark.height,
        "n_noise": int(data.corpus["is_noise"].sum()),
        "counts": {
            "corpus": dict(sorted(Counter(data.corpus["kind"].to_list()).items())),
            "target": dict(sorted(Counter(data.target["kind"].to_list()).items())),
            "benchmark": dict(sorted(Counter(data.benchmark["task"].to_list()).items())),
        },
        "world": data.world.summary(),
        "sha256": {f"{name}.jsonl": _sha256(path) for name, path in paths.items()},
    }


def demo_folder(workspace_dir: str | Path, seed: int = 0, n_docs: int | None = None) -> Path:
    """Where ``ensure_demo`` keeps the demo of this seed and size: ``<ws>/datasets/demo-s{seed}-n{n}``."""
    n = DEFAULT_N_DOCS if n_docs is None else n_docs
    return Path(workspace_dir) / "datasets" / f"demo-s{seed}-n{n}"


def _is_complete(folder: Path, seed: int, n: int) -> bool:
    manifest = read_json(folder / "manifest.json", default=None)
    if not isinstance(manifest, dict) or manifest.get("version") != GENERATOR_VERSION:
        return False
    wanted = {
        "seed": seed,
        "n_docs": n,
        "noise_fraction": DEFAULT_NOISE_FRACTION,
        "n_target": DEFAULT_N_TARGET,
        "n_benchmark": DEFAULT_N_BENCHMARK,
    }
    if any(manifest.get(k) != v for k, v in wanted.items()):
        return False
    hashes = manifest.get("sha256") or {}
    for name in FILES:
        path = folder / f"{name}.jsonl"
        if not path.is_file() or hashes.get(path.name) != _sha256(path):
            return False
    return True


def ensure_demo(workspace_dir: str | Path, seed: int = 0, n_docs: int | None = None) -> Path:
    """The workspace's demo folder for (seed, n_docs), generated only when it is missing or stale.

    Args:
        workspace_dir: workspace root; the demo goes to ``datasets/demo-s{seed}-n{n_docs}/``.
        seed, n_docs: as ``generate_demo`` (default sizes otherwise).

    Returns:
        The folder holding corpus.jsonl, target.jsonl, benchmark.jsonl and manifest.json.
    """
    n = DEFAULT_N_DOCS if n_docs is None else n_docs
    _check_sizes(seed, n, DEFAULT_NOISE_FRACTION, DEFAULT_N_TARGET, DEFAULT_N_BENCHMARK)
    folder = demo_folder(workspace_dir, seed, n)
    if not _is_complete(folder, seed, n):
        write_demo(folder, seed=seed, n_docs=n)
    return folder
