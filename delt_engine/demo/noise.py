"""Planted low-quality documents of the demo corpus, made the way such text arises on the web.

word salad (a clean text's words shuffled), character noise (heavy typos, stray symbols, broken
encodings), boilerplate (menus, link lists, cookie banners, "click here" lines, repeated), truncated
fragments (a few words cut from a clean text mid-sentence) and near duplicates (a clean corpus
document with a few words swapped for synonyms). Contradicting entries are in ``demo_facts``.
"""

from __future__ import annotations

import string

from .world import CRAFTS, JOBS, Rng, World

# Synonym swaps of near duplicates: meaning (and every world fact) stays, a few words change.
SYNONYMS = {
    "walked": "went",
    "went": "walked",
    "bought": "purchased",
    "large": "big",
    "big": "large",
    "small": "little",
    "little": "small",
    "old": "ancient",
    "lives": "dwells",
    "lived": "dwelt",
    "quiet": "calm",
    "busy": "bustling",
    "keeps": "has",
    "called": "named",
    "named": "called",
    "road": "path",
    "path": "road",
    "people": "folk",
    "searched": "combed",
    "found": "spotted",
    "gladly": "happily",
    "cold": "chilly",
    "hot": "warm",
    "loud": "noisy",
    "many": "several",
    "every": "each",
    "each": "every",
    "beside": "by",
    "house": "home",
    "children": "kids",
    "smiled": "grinned",
    "slept": "rested",
    "said": "replied",
    "answer": "result",
    "streets": "lanes",
    "creature": "beast",
    "animal": "creature",
    "famous": "renowned",
    "best": "finest",
    "travel": "journey",
    "stands": "sits",
    "flows": "runs",
    "runs": "flows",
    "built": "raised",
    "founded": "established",
    "has": "owns",
    "gets": "receives",
    "gives": "hands",
    "left": "remaining",
    "hello": "hi",
    "goodbye": "farewell",
    "morning": "day",
    "finish": "complete",
    "love": "adore",
    "watched": "observed",
    "ready": "done",
    "carries": "holds",
    "hungry": "starving",
    "mostly": "mainly",
    "common": "frequent",
    "thick": "heavy",
}
MENU = (
    "Home",
    "About",
    "Contact",
    "News",
    "Shop",
    "Login",
    "Register",
    "Search",
    "Help",
    "Events",
    "Gallery",
    "FAQ",
    "Blog",
    "Forum",
    "Archive",
)
CLICK = (
    "Click here to subscribe.",
    "Click here to read more.",
    "Click here to see all offers.",
    "CLICK HERE to claim your reward!",
    "Click here to download the guide.",
    "Click here for more info.",
)
BLOCKS = (
    "This site uses cookies. By continuing to browse you agree to our use of cookies. Accept | Decline",
    "Share this: Print | Email | Save | Like",
    "Posted by admin | 0 comments | Leave a reply",
    "Sign up for our newsletter and never miss an update!",
    "Read more... Read more... Read more...",
    "Skip to main content",
    "You must be logged in to post a comment.",
    "Related posts: none found.",
)


def word_salad(text: str, rng: Rng) -> str:
    """The words of ``text`` in random order (sometimes lower-cased without punctuation)."""
    words = text.split()
    if rng.chance(0.3):
        words = [w.strip(string.punctuation).lower() for w in words]
        words = [w for w in words if w]
    rng.shuffle(words)
    return " ".join(words)


def _typo(word: str, rng: Rng) -> str:
    if len(word) < 2:
        return word + rng.pick(string.ascii_lowercase)
    i = rng.int(0, len(word) - 2)
    op = rng.int(0, 4)
    if op == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 1:
        return word[:i] + word[i + 1 :]
    if op == 2:
        return word[:i] + word[i] + word[i:]
    if op == 3:
        return word[:i] + rng.pick(string.ascii_lowercase) + word[i + 1 :]
    return word[:i] + rng.pick(string.ascii_lowercase + string.digits) + word[i:]


def _garbage(rng: Rng) -> str:
    chars = string.ascii_letters + string.digits + "#@%&*~^|<>{}[]/\\=+"
    return "".join(rng.pick(chars) for _ in range(rng.int(2, 8)))


MOJIBAKE = ("Ã©", "â€™", "â€œ", "â€", "Â", "�", "&amp;", "&#39;", "Ã¨", "Ã¶")


def char_noise(text: str, rng: Rng) -> str:
    """``text`` with heavy typos, random character runs or broken-encoding garbage."""
    words = text.split(" ")
    style = rng.int(0, 2)
    rate = (0.3 + 0.4 * rng.float()) if style != 1 else (0.15 + 0.3 * rng.float())
    out = []
    for w in words:
        if not rng.chance(rate):
            out.append(w)
        elif style == 0:
            out.append(_typo(_typo(w, rng), rng) if rng.chance(0.4) else _typo(w, rng))
        elif style == 1:
            out.append(_garbage(rng) if rng.chance(0.6) else w + _garbage(rng))
        else:
            k = rng.int(0, len(w))
            out.append(w[:k] + rng.pick(MOJIBAKE) + w[k:])
    return " ".join(out)


def boilerplate(world: World, rng: Rng) -> str:
    """A page of navigation, link lists, banners and spam lines, some repeated."""
    t1, t2 = rng.sample(world.towns, 2)
    site = rng.pick(
        (f"{t1.name} Online", f"The {t1.name} Gazette", f"{t1.river} Valley Portal", f"{t1.name} Market News")
    )
    links = [
        f"{t1.name} news",
        f"{t2.name} weather",
        f"{t1.river} fishing reports",
        f"Best {t1.craft} deals",
        f"Jobs for a {rng.pick(list(JOBS))}",
        f"{t2.name} events",
        f"Cheap {rng.pick(CRAFTS)}",
    ]
    blocks = [
        " | ".join(rng.sample(MENU, rng.int(4, 8))),
        rng.pick(CLICK),
        " ".join("» " + link for link in rng.sample(links, rng.int(3, 6))),
        f"Copyright {rng.int(1998, 2031)} {site}. All rights reserved. Privacy | Terms | Sitemap",
        f"Page {rng.int(1, 9)} of {rng.int(10, 40)} « Prev 1 2 3 Next »",
        f"Buy cheap {t2.craft} now!!! Best price in {t2.name}!!! Limited offer!!!",
        f"Tags: {t1.name}, {t1.craft}, {rng.pick(list(JOBS))}, news, events",
        f"Welcome to {site}!",
    ] + list(rng.sample(BLOCKS, 3))
    chosen = rng.sample(blocks, rng.int(3, 7))
    lines = []
    for block in chosen:
        lines += [block] * (rng.int(2, 4) if rng.chance(0.35) else 1)
    return "\n".join(lines)


def fragment(text: str, rng: Rng) -> str:
    """A few words (3-12) of ``text``, cut mid-sentence (no closing punctuation)."""
    words = text.split()
    n = min(len(words), rng.int(3, 12))
    start = 0 if rng.chance(0.5) or len(words) <= n else rng.int(0, len(words) - n)
    piece = words[start : start + n]
    piece[-1] = piece[-1].rstrip('.,;:!?"')
    if not piece[-1]:
        piece = piece[:-1]
    return " ".join(piece)


def _swap(word: str) -> str | None:
    core = word.strip(string.punctuation)
    swap = SYNONYMS.get(core.lower())
    if not core or swap is None:
        return None
    if core[0].isupper():
        swap = swap.capitalize()
    return word.replace(core, swap, 1)


def near_duplicate(text: str, rng: Rng) -> str:
    """``text`` with 1-4 words swapped for synonyms (or one word dropped when none can be swapped)."""
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if _swap(w) is not None]
    if spots:
        for i in rng.sample(spots, min(len(spots), rng.int(1, 4))):
            words[i] = _swap(words[i])
    else:
        del words[rng.int(1, len(words) - 1)]
    return " ".join(words)
