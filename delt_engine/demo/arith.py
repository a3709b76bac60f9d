"""Worked arithmetic about the demo world's people and towns (clean documents).

Every equation is written ``a OP b = c`` with OP one of + - × ÷ and is correct. Difficulty 1: one
step with numbers up to 20; 2: two steps with numbers up to 100; 3: multiplication, division and
three-step problems (sometimes with the world's town populations).
"""

from __future__ import annotations

from .world import JOBS, Rng, World

ITEMS = (
    ("apple", "apples"),
    ("egg", "eggs"),
    ("pear", "pears"),
    ("coin", "coins"),
    ("nut", "nuts"),
    ("plum", "plums"),
    ("candle", "candles"),
    ("marble", "marbles"),
    ("shell", "shells"),
    ("carrot", "carrots"),
    ("button", "buttons"),
    ("feather", "feathers"),
)
GAIN = ("buys", "finds", "picks", "is given", "gets")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b, "÷": lambda a, b: a // b}


def count(n: int, noun: tuple[str, str]) -> str:
    """``n`` with the singular or plural noun ("1 apple", "7 apples")."""
    return f"{n} {noun[0] if n == 1 else noun[1]}"


def eq(a: int, op: str, b: int) -> tuple[int, str]:
    """The value of ``a op b`` and the equation text."""
    c = OPS[op](a, b)
    return c, f"{a} {op} {b} = {c}"


def _d1(world: World, rng: Rng) -> str:
    (p, friend), items = rng.sample(world.people, 2), rng.pick(ITEMS)
    a, b = rng.int(2, 20), rng.int(1, 12)
    form = rng.int(0, 3)
    if form == 0:
        c, e = eq(a, "+", b)
        return (
            f"{p.first} has {count(a, items)} and {rng.pick(GAIN)} {b} more. {e}. {p.first} now has {count(c, items)}."
        )
    if form == 1:
        a, b = max(a, b) + 1, min(a, b)
        c, e = eq(a, "-", b)
        return (
            f"{p.first} has {count(a, items)} and gives {b} to {friend.first}. {e}. "
            f"{p.first} has {count(c, items)} left."
        )
    if form == 2:
        c, e = eq(a, "+", b)
        return f"What is {a} + {b}? {e}. The answer is {c}."
    c, e = eq(a, "+", b)
    return f"{a} plus {b} makes {c}, so {e}. Check: {c} - {b} = {a}."


def _d2(world: World, rng: Rng) -> str:
    p = rng.pick(world.people)
    form = rng.int(0, 2)
    if form == 0:
        product = JOBS[p.job][3]
        a, b = rng.int(10, 60), rng.int(5, 40)
        c, e1 = eq(a, "+", b)
        d = rng.int(2, c - 2)
        f, e2 = eq(c, "-", d)
        return (
            f"{p.full} the {p.job} made {a} {product} in the morning and {b} in the afternoon. {e1}. "
            f"Then {p.pronoun} sold {d}. {e2}. {p.pronoun.capitalize()} has {f} {product} left."
        )
    if form == 1:
        items, town = rng.pick(ITEMS), rng.pick(world.towns)
        a = rng.int(30, 99)
        b = rng.int(5, a - 5)
        c, e1 = eq(a, "-", b)
        g = rng.int(3, 30)
        h, e2 = eq(c, "+", g)
        return (
            f"A cart leaves {town.name} with {count(a, items)}. At the first stop the driver unloads {b}. "
            f"{e1}. At the second stop {g} more are loaded. {e2}. The cart now carries {count(h, items)}."
        )
    lines = []
    for _ in range(rng.int(3, 5)):
        op = rng.pick(("+", "-"))
        a, b = rng.int(10, 99), rng.int(2, 60)
        a, b = (a, b) if op == "+" or a >= b else (b, a)
        lines.append(eq(a, op, b)[1])
    return rng.pick(("Practice sums:", "Sums for today:", "Work these out:")) + "\n" + "\n".join(lines)


def _d3_baskets(world: World, rng: Rng) -> str:
    (p, n), items = rng.sample(world.people, 2), rng.pick(ITEMS)
    a, b = rng.int(3, 12), rng.int(3, 12)
    c, e1 = eq(a, "×", b)
    d = rng.int(1, a - 1)
    e, e2 = eq(d, "×", b)
    f, e3 = eq(c, "-", e)
    return (
        f"{p.first} packs {a} baskets with {count(b, items)} each. How many {items[1]} is that? {e1}. "
        f"{p.pronoun.capitalize()} gives {d} of the baskets to {n.first}, and those hold {e2} {items[1]}. "
        f"{e3}. {p.first} keeps {count(f, items)}."
    )


def _d3_share(world: World, rng: Rng) -> str:
    items, k, each = rng.pick(ITEMS), rng.int(2, 9), rng.int(2, 12)
    total, e1 = eq(k, "×", each)
    _, e2 = eq(total, "÷", k)
    town = rng.pick(world.towns)
    return (
        f"The teacher in {town.name} has {count(total, items)} to share equally among {k} children. "
        f"{e2}, so each child gets {count(each, items)}. To check, multiply back: {e1}."
    )


def _d3_towns(world: World, rng: Rng) -> str:
    t1, t2 = rng.sample(world.towns, 2)
    s, e1 = eq(t1.population, "+", t2.population)
    big, small = max(t1, t2, key=lambda t: t.population), min(t1, t2, key=lambda t: t.population)
    d, e2 = eq(big.population, "-", small.population)
    text = f"{t1.name} has {t1.population} people and {t2.name} has {t2.population}. Together: {e1}."
    return text + (f" {big.name} is the bigger town, by {e2} people." if d > 0 else " The towns are equal.")


def _d3_split(world: World, rng: Rng) -> str:
    tens, ones, b = 10 * rng.int(1, 4), rng.int(1, 9), rng.int(3, 9)
    a = tens + ones
    t, e1 = eq(tens, "×", b)
    o, e2 = eq(ones, "×", b)
    total, e3 = eq(t, "+", o)
    return (
        f"To find {a} × {b}, split {a} into {tens} and {ones}. First {e1}. Then {e2}. "
        f"Add the parts: {e3}. So {a} × {b} = {total}."
    )


def arithmetic(world: World, rng: Rng, difficulty: int) -> str:
    """One worked-arithmetic document of the given difficulty (1..3)."""
    if difficulty == 1:
        return _d1(world, rng)
    if difficulty == 2:
        return _d2(world, rng)
    makers = (_d3_baskets, _d3_share, _d3_towns, _d3_split)
    parts = [rng.pick(makers)(world, rng) for _ in range(rng.int(1, 3))]
    return "\n\n".join(parts)
