"""Simple coherent stories and short dialogues about the demo world's people (clean documents).

Every detail a story or dialogue states about the world is true in it: a person's job, home town and
pet, the town's river and craft, the pet's food and habitat. Longer (harder) texts chain more episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .world import JOBS, Person, Rng, World

CONNECTIVES = (
    "One morning",
    "Later",
    "After lunch",
    "In the afternoon",
    "The next day",
    "Before sunset",
    "That evening",
    "A week later",
    "Soon after",
)
FRUIT = ("pears", "plums", "apples", "walnuts", "cherries")


@dataclass
class _Cast:
    """The people and places one story or dialogue uses."""

    p: Person
    world: World
    neighbour: Person
    friend: Person  # lives in another town

    @property
    def town(self):
        return self.world.by_name[self.p.home]

    @property
    def pet(self):
        return self.world.by_name[self.p.pet]


def _cast(world: World, rng: Rng) -> _Cast:
    p = rng.pick(world.people)
    neighbours = [q for q in world.residents(p.home) if q is not p]
    friend = rng.pick(world.people)
    while friend.home == p.home:  # someone from another town
        friend = rng.pick(world.people)
    return _Cast(p, world, rng.pick(neighbours), friend)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _connect(conn: str, sentence: str) -> str:
    if sentence.startswith(("That ", "Then", "At last", "By ")):  # already says when
        return sentence
    first, _, rest = sentence.partition(" ")
    if first in ("She", "He", "It", "The", "Then", "At", "By", "That"):
        first = first.lower()
    return f"{conn}, {first} {rest}"


def _ep_work(c: _Cast, rng: Rng) -> list[str]:
    p, (_, _, past, product, place) = c.p, JOBS[c.p.job]
    out = [
        f"{p.first} spent the morning at the {place}, where {p.pronoun} {past}.",
        f"By noon {p.pronoun} had {rng.int(3, 24)} {product} ready.",
    ]
    if rng.chance(0.5):
        out.append(f'"There is always more to do," {p.first} said to {p.obj}self.')
    return out


def _ep_walk(c: _Cast, rng: Rng) -> list[str]:
    p, pet = c.p, c.pet
    return [
        f"{p.first} took {p.pet_name} the {pet.name} for a walk along the {c.town.river}.",
        rng.pick(
            (
                f"{p.pet_name} ran ahead, looking for {pet.food}.",
                f"{p.pet_name} sniffed at every stone and hoped to find {pet.food}.",
            )
        ),
    ]


def _ep_lost(c: _Cast, rng: Rng) -> list[str]:
    p, pet = c.p, c.pet
    return [
        f"{p.pet_name} ran off and did not come back.",
        f"{p.first} searched the streets of {p.home} and called for {p.pet_name}.",
        f"At last {p.pronoun} found {p.pet_name} in the {pet.habitat} beyond the town, eating {pet.food}.",
        rng.pick(("They walked home together.", f"{_cap(p.pronoun)} carried {p.pet_name} home.")),
    ]


def _ep_visit(c: _Cast, rng: Rng) -> list[str]:
    p, f = c.p, c.friend
    other = c.world.by_name[f.home]
    road = (
        f"The path followed the {other.river} most of the way."
        if other.river == c.town.river
        else f"On the way {p.pronoun} crossed the {other.river} by an old bridge."
    )
    out = [
        f"{p.first} walked to {f.home} to visit {f.first}, a {f.job} who lived there.",
        road,
        f"{f.first}'s {f.pet}, {f.pet_name}, came out to say hello.",
    ]
    if rng.chance(0.5):
        out.append(f'"It is good to see you," said {f.first}.')
    return out


def _ep_market(c: _Cast, rng: Rng) -> list[str]:
    p, n = c.p, c.neighbour
    k = rng.int(2, 9)
    return [
        f"At the market in {p.home}, {p.first} bought {k} {JOBS[n.job][3]} from {n.first} the {n.job}.",
        rng.pick(
            (
                f"{n.first} wrapped them in paper.",
                "The market was loud and full of people.",
                f"{_cap(p.pronoun)} paid with {rng.int(2, 9)} coins.",
            )
        ),
    ]


def _ep_weather(c: _Cast, rng: Rng) -> list[str]:
    p = c.p
    return [
        rng.pick(
            (
                f"It began to rain, so {p.first} waited under the old bridge over the {c.town.river}.",
                f"The wind was cold that day, and {p.first} wore {p.poss} thick coat.",
                f"The sun was hot, so {p.first} rested in the shade by the {c.town.river}.",
            )
        )
    ]


def _ep_object(c: _Cast, rng: Rng) -> list[str]:
    owned = c.world.owned_by(c.p.full)
    if not owned:
        return _ep_weather(c, rng)
    t = owned[0]
    return [
        f"{c.p.first} polished the {t.name}, which is made of {t.material}.",
        f"It had been made in {t.made_in} long ago.",
    ]


def _ep_help(c: _Cast, rng: Rng) -> list[str]:
    p, n = c.p, c.neighbour
    return [
        f"{n.first}, a neighbour, knocked on the door and asked for help.",
        f"{p.first} gladly helped, and {n.first} thanked {p.obj} with a basket of {rng.pick(FRUIT)}.",
    ]


def _ep_fair(c: _Cast, rng: Rng) -> list[str]:
    t = c.town
    return [
        f"That week {t.name} held a fair to sell its {t.craft}.",
        f"{c.p.first} watched the traders and bought some {t.craft} for the house.",
    ]


EPISODES = (_ep_work, _ep_walk, _ep_lost, _ep_visit, _ep_market, _ep_weather, _ep_object, _ep_help, _ep_fair)


def _opening(c: _Cast, rng: Rng) -> str:
    p = c.p
    return rng.pick(
        (
            f"{p.full} was a {p.job} in {p.home}.",
            f"There once was a {p.job} named {p.full} who lived in {p.home}.",
            f"In {p.home}, on the banks of the {c.town.river}, lived {p.full}, a {p.job}.",
            f"{p.full} lived in {p.home} with {p.poss} {p.pet}, {p.pet_name}.",
            f"Every morning, {p.full} woke early in {p.poss} house in {p.home}.",
        )
    )


def _closing(c: _Cast, rng: Rng) -> str:
    p = c.p
    return rng.pick(
        (
            f"That night {p.first} slept well.",
            "It had been a good day.",
            f"{p.pet_name} curled up by the fire, and the house was quiet.",
            f"{_cap(p.pronoun)} smiled and went home.",
            f"{p.first} decided to walk by the {c.town.river} again soon.",
        )
    )


def story(world: World, rng: Rng, difficulty: int) -> str:
    """A story of 1 (difficulty 1), 2-3 (difficulty 2) or 4-6 (difficulty 3) episodes."""
    c = _cast(world, rng)
    n_episodes = {1: 1, 2: rng.int(2, 3), 3: rng.int(4, 7)}[difficulty]
    episodes = rng.sample(EPISODES, n_episodes)
    connectives = rng.sample(CONNECTIVES, n_episodes)
    paragraphs = [[_opening(c, rng)]]
    for i, ep in enumerate(episodes):
        sentences = ep(c, rng)
        if difficulty == 1:
            sentences = sentences[:2]
        elif i > 0 or rng.chance(0.5):
            sentences[0] = _connect(connectives[i], sentences[0])
        if difficulty == 3 and i in (2, 4):
            paragraphs.append([])
        paragraphs[-1].extend(sentences)
    if difficulty > 1 or rng.chance(0.5):
        paragraphs[-1].append(_closing(c, rng))
    return "\n\n".join(" ".join(par) for par in paragraphs)


# ----------------------------------------------------------------------------- dialogues


def _turns_going(a: Person, b: Person, c: _Cast, rng: Rng) -> list[tuple[Person, str]]:
    _, _, _, product, place = JOBS[b.job]
    return [
        (a, rng.pick(("Where are you going?", "Where are you off to today?"))),
        (b, f"To the {place}. I have {rng.int(3, 20)} {product} to finish."),
    ]


def _turns_pet(a: Person, b: Person, c: _Cast, rng: Rng) -> list[tuple[Person, str]]:
    pet = c.world.by_name[b.pet]
    return [
        (a, f"How is {b.pet_name}?"),
        (b, f"{b.pet_name} is well. {_cap(pet.plural)} love {pet.food}, so I bought some at the market."),
    ]


def _turns_river(a: Person, b: Person, c: _Cast, rng: Rng) -> list[tuple[Person, str]]:
    town = c.world.by_name[b.home]
    if rng.chance(0.5):
        return [
            (a, f"Does the {town.river} really flow through {town.name}?"),
            (b, "Yes, it runs right past my house."),
        ]
    wrong = rng.pick([r for r in c.world.rivers if r != town.river])
    return [(a, f"Is {town.name} on the {wrong}?"), (b, f"No, {town.name} lies on the {town.river}.")]


def _turns_buy(a: Person, b: Person, c: _Cast, rng: Rng) -> list[tuple[Person, str]]:
    product, price, k = JOBS[b.job][3], rng.int(2, 9), rng.int(2, 6)
    return [
        (a, f"How much are your {product}?"),
        (b, f"{price} coins each."),
        (a, f"Then I will take {k}."),
        (b, f"That makes {k * price} coins, please."),
    ]


def _turns_craft(a: Person, b: Person, c: _Cast, rng: Rng) -> list[tuple[Person, str]]:
    town = c.world.by_name[b.home]
    return [
        (a, f"What is {town.name} known for?"),
        (b, f"Our {town.craft}. People come from all over the valley to buy it."),
    ]


def _turns_job(a: Person, b: Person, c: _Cast, rng: Rng) -> list[tuple[Person, str]]:
    return [(a, f"Do you still work as a {b.job}?"), (b, f"I do. I {JOBS[b.job][1]} every day.")]


def _turns_weather(a: Person, b: Person, c: _Cast, rng: Rng) -> list[tuple[Person, str]]:
    if rng.chance(0.5):
        return [
            (a, "Do you think it will rain?"),
            (
                b,
                rng.pick(
                    ("I hope not. I left my coat at home.", "Perhaps later. The clouds are coming from the hills.")
                ),
            ),
        ]
    return [
        (a, "Cold today, is it not?"),
        (b, rng.pick(("It is. Come inside and warm up.", "Very cold. The river will freeze soon."))),
    ]


TURNS = (_turns_going, _turns_pet, _turns_river, _turns_buy, _turns_craft, _turns_job, _turns_weather)


def dialogue(world: World, rng: Rng, difficulty: int) -> str:
    """A conversation of about 2-4 (difficulty 1), 5-8 (2) or 9-14 (3) lines between two people."""
    c = _cast(world, rng)
    a, b = c.p, (c.neighbour if rng.chance(0.5) else c.friend)
    n_pairs = {1: 1, 2: rng.int(2, 3), 3: rng.int(4, 6)}[difficulty]
    lines: list[tuple[Person, str]] = [
        (a, rng.pick((f"Good morning, {b.first}!", f"Hello, {b.first}.", f"{b.first}! I have not seen you in weeks.")))
    ]
    lines.append(
        (
            b,
            rng.pick(
                (
                    f"Hello, {a.first}. What a fine day.",
                    f"Good to see you, {a.first}.",
                    f"Hello! You are up early, {a.first}.",
                )
            ),
        )
    )
    for turns in rng.sample(TURNS, n_pairs):
        first, second = (a, b) if rng.chance(0.6) else (b, a)
        lines += turns(first, second, c, rng)
    if difficulty > 1:
        lines += [
            (a, rng.pick(("I must go now. Goodbye!", f"Goodbye, {b.first}.", "See you at the market."))),
            (b, rng.pick((f"Goodbye. Say hello to {a.pet_name} for me.", "Take care.", "Until next time."))),
        ]
    text = "\n".join(f"{who.first}: {said}" for who, said in lines)
    if difficulty > 1 and rng.chance(0.6):
        place = rng.pick((f"at the market in {a.home}", f"on the road to {b.home}", f"by the well in {a.home}"))
        text = f"{a.full} met {b.full} {place}.\n\n{text}"
    return text
