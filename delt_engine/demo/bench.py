"""Multiple-choice benchmark items derived from the demo world (scored like lm-evaluation-harness).

Three tasks: ``facts`` (which continuation states the world's true attribute of an entity),
``arithmetic`` ("7 + 5 =" with four numbers to choose from) and ``grammar`` (a grammatical sentence
against a minimal-pair variant: agreement, "did not" + verb form, count nouns, word order, pronoun
case). Contexts use phrasings that never occur in the corpus, and arithmetic problems and grammar
sentences that do occur there are skipped, so the benchmark tests what was learned, not what was copied.
The answer positions are balanced across the choices.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .arith import ITEMS, OPS
from .world import COLOURS, CRAFTS, FOODS, HABITATS, JOBS, MATERIALS, Rng, World

# (entity list, context template, attribute getter, pool of candidate values)
FACT_QUESTIONS: tuple[tuple[str, str, Callable, Callable], ...] = (
    ("towns", "The river of {T} is the", lambda t: t.river, lambda w: w.rivers),
    ("towns", "The person who founded {T} was", lambda t: t.founder, lambda w: w.founders),
    ("towns", "The trade that {T} is famous for is", lambda t: t.craft, lambda w: list(CRAFTS)),
    ("people", "By trade, {N} is a", lambda p: p.job, lambda w: list(JOBS)),
    ("people", "The home town of {N} is", lambda p: p.home, lambda w: [t.name for t in w.towns]),
    ("people", "The pet that {N} keeps is a", lambda p: p.pet, lambda w: [a.name for a in w.animals]),
    ("animals", "The colour of a {sp} is", lambda a: a.colour, lambda w: list(COLOURS)),
    ("animals", "The favourite food of the {sp} is", lambda a: a.food, lambda w: list(FOODS)),
    ("animals", "Wild {sps} are found in the", lambda a: a.habitat, lambda w: list(HABITATS)),
    ("things", "The material of the {O} is", lambda t: t.material, lambda w: list(MATERIALS)),
    ("things", "The owner of the {O} is", lambda t: t.owner, lambda w: [p.full for p in w.people]),
)
# Verb forms for grammar items: base, third person singular, past, complement.
VERBS = (
    ("walk", "walks", "walked", "to the market in {T}"),
    ("feed", "feeds", "fed", "{poss} {sp} every evening"),
    ("visit", "visits", "visited", "{Other} in {T}"),
    ("carry", "carries", "carried", "a basket of plums to {T}"),
    ("sell", "sells", "sold", "{product} at the market"),
    ("write", "writes", "wrote", "a letter to {Other}"),
    ("cross", "crosses", "crossed", "the {R} by the old bridge"),
    ("mend", "mends", "mended", "the fence behind {poss} house"),
    ("bring", "brings", "brought", "pears to the fair in {T}"),
    ("see", "sees", "saw", "a {sp} near the {R}"),
)
ANIMAL_VERBS = (("eat", "eats", "{food}"), ("like", "likes", "the {hab}"), ("chase", "chases", "beetles at dusk"))
NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine")
ADVERBS = ("", "", "often ", "always ", "sometimes ", "never ")


def _balanced_answers(n: int, n_choices: int, rng: Rng) -> list[int]:
    answers = [i % n_choices for i in range(n)]
    rng.shuffle(answers)
    return answers


def _item(task: str, k: int, context: str, correct: str, wrong: list[str], answer: int) -> dict:
    choices = list(wrong)
    choices.insert(answer, correct)
    return {"id": f"{task}-{k:03d}", "task": task, "context": context, "choices": choices, "answer": answer}


def facts_items(world: World, n: int, rng: Rng, seen: str) -> list[dict]:
    """``n`` fact questions with 4 choices; ``seen`` is the corpus text the contexts must not occur in."""
    by_question = []
    for q in FACT_QUESTIONS:
        entities = list(getattr(world, q[0]))
        rng.shuffle(entities)
        by_question.append([(q, e) for e in entities])
    # Round robin over the questions, so every kind of fact is asked about equally often.
    order = [lst[i] for i in range(max(map(len, by_question))) for lst in by_question if i < len(lst)]
    answers, items = _balanced_answers(n, 4, rng), []
    for (_, template, get, pool), e in order:
        if len(items) == n:
            break
        context = template.format(
            T=getattr(e, "name", ""),
            N=getattr(e, "full", ""),
            O=getattr(e, "name", ""),
            sp=getattr(e, "name", ""),
            sps=getattr(e, "plural", ""),
        )
        if context in seen:
            continue
        true = get(e)
        wrong = rng.sample([v for v in pool(world) if v != true], 3)
        items.append(_item("facts", len(items), context, true, wrong, answers[len(items)]))
    return items


def _distractors(c: int, rng: Rng) -> list[str]:
    options = [c + d for d in (-10, -2, -1, 1, 2, 10) if c + d >= 0]
    return [str(v) for v in rng.sample(options, 3)]


def arithmetic_items(n: int, rng: Rng, seen: str) -> list[dict]:
    """``n`` problems "a OP b =" with 4 numeric choices, none of them worked out in ``seen``."""
    answers, items = _balanced_answers(n, 4, rng), []
    used = set(re.findall(r"\d+ [-+×÷] \d+ =", seen))  # cheap first filter; the substring test is exact
    while len(items) < n:
        op = rng.weighted(("+", "-", "×"), (4, 3, 3))
        if op == "×":
            a, b = rng.int(2, 12), rng.int(2, 12)
        else:
            a, b = rng.int(2, 60), rng.int(2, 40)
            a, b = (a, b) if op == "+" or a > b else (b + 1, a)
        context = f"{a} {op} {b} ="
        if context in used or context in seen:
            continue
        used.add(context)
        c = OPS[op](a, b)
        items.append(_item("arithmetic", len(items), context, str(c), _distractors(c, rng), answers[len(items)]))
    return items


def _grammar_pair(world: World, rng: Rng, phenomenon: int) -> tuple[str, str]:
    """(grammatical, ungrammatical) sentences for one minimal pair."""
    p, other = rng.sample(world.people, 2)
    town = world.by_name[p.home]
    verbs = VERBS if phenomenon != 4 else [v for v in VERBS if not v[3].startswith("{Other}")]
    base, third, past, comp = rng.pick(verbs)
    comp = comp.format(T=p.home, poss=p.poss, sp=p.pet, Other=other.first, product=JOBS[p.job][3], R=town.river)
    if phenomenon == 0:  # subject-verb agreement, singular subject
        adv = rng.pick(ADVERBS)
        return f"{p.first} {adv}{third} {comp}.", f"{p.first} {adv}{base} {comp}."
    if phenomenon == 1:  # agreement, plural subject
        if rng.chance(0.5):
            a = rng.pick(world.animals)
            vb, v3, obj = rng.pick(ANIMAL_VERBS)
            obj = obj.format(food=a.food, hab=a.habitat)
            return f"The {a.plural} near {p.home} {vb} {obj}.", f"The {a.plural} near {p.home} {v3} {obj}."
        return f"{p.first} and {other.first} {base} {comp}.", f"{p.first} and {other.first} {third} {comp}."
    if phenomenon == 2:  # do-support takes the base form
        return f"{p.first} did not {base} {comp} yesterday.", f"{p.first} did not {past} {comp} yesterday."
    if phenomenon == 3:  # a number word needs a plural noun
        sg, pl = rng.pick(ITEMS)
        num = rng.pick(NUMBER_WORDS)
        return f"{p.first} bought {num} {pl} in {p.home}.", f"{p.first} bought {num} {sg} in {p.home}."
    if phenomenon == 4:  # word order: the verb follows its subject
        head, _, tail = comp.partition(" ")
        return f"{p.first} {past} {comp}.", f"{p.first} {head} {past} {tail}."
    if rng.chance(0.5):  # pronoun case, subject position
        subj, wrong = p.pronoun.capitalize(), p.obj.capitalize()
        return f"{subj} gave {p.pet_name} some fresh water.", f"{wrong} gave {p.pet_name} some fresh water."
    return f"{other.first} gave the key to {p.obj}.", f"{other.first} gave the key to {p.pronoun}."


def _split_shared(good: str, bad: str) -> tuple[str, str, str]:
    """Shared word prefix as the context; the rest of each sentence as its choice."""
    gw, bw = good.split(" "), bad.split(" ")
    k = 0
    while k < min(len(gw), len(bw)) - 1 and gw[k] == bw[k]:
        k += 1
    return " ".join(gw[:k]), " ".join(gw[k:]), " ".join(bw[k:])


def grammar_items(world: World, n: int, rng: Rng, seen: str) -> list[dict]:
    """``n`` minimal pairs (grammatical vs ungrammatical), each sentence new to ``seen``."""
    answers, items, used = _balanced_answers(n, 2, rng), [], set()
    while len(items) < n:
        good, bad = _grammar_pair(world, rng, len(items) % 6)
        if good in used or good in seen:
            continue
        used.add(good)
        context, right, wrong = _split_shared(good, bad)
        items.append(_item("grammar", len(items), context, right, [wrong], answers[len(items)]))
    return items


def benchmark_items(world: World, n: int, rng: Rng, seen: str) -> list[dict]:
    """``n`` items split evenly over facts, arithmetic and grammar (the remainder goes to the first tasks)."""
    sizes = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    return (
        facts_items(world, sizes[0], rng, seen)
        + arithmetic_items(sizes[1], rng, seen)
        + grammar_items(world, sizes[2], rng, seen)
    )
