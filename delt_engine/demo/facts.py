"""Encyclopedic entries about the demo world, and contradicting entries (a kind of planted noise).

An entry states facts of one entity (a town, person, animal species or object). A contradicting entry
uses the very same templates but states one fact wrongly (another town's river, another person as
owner, ...) or states it correctly and then again with a wrong value later (a self-contradiction).
"""

from __future__ import annotations

import dataclasses

from .world import COLOURS, CRAFTS, FOODS, HABITATS, JOBS, MATERIALS, Animal, Person, Rng, Thing, Town, World

# Attributes a contradiction may falsify; clean entries state them only with their true values.
CHECKED = {
    Town: ("river", "craft", "founder", "population", "founded_year"),
    Person: ("job", "home", "pet"),
    Animal: ("colour", "food", "habitat"),
    Thing: ("material", "owner"),
}
TEMPLATE_OF = {"founded_year": "founder"}  # attributes stated inside another attribute's sentences

TOWN_T = {
    "river": (
        "{T} lies on the {R}.",
        "The {R} flows through {T}.",
        "{T} was built on the banks of the {R}.",
        "The {R} runs past the old walls of {T}.",
        "{T} stands beside the {R}.",
    ),
    "population": (
        "{P} people live in {T}.",
        "{T} is home to {P} people.",
        "{T} has {P} inhabitants.",
        "At the last count, {T} had {P} people.",
        "The population of {T} is {P}.",
    ),
    "founder": (
        "{T} was founded by {F} in the year {Y}.",
        "{F} founded {T} in the year {Y}.",
        "The first houses of {T} were built by {F} in the year {Y}.",
        "{T} dates from the year {Y}, when {F} settled there.",
    ),
    "craft": (
        "{T} is known for its {C}.",
        "The people of {T} are famous for their {C}.",
        "Traders travel to {T} to buy its {C}.",
        "The best {C} in the valley comes from {T}.",
        "Many families in {T} make a living from {C}.",
    ),
}
TOWN_INTRO = (
    "{T} is a {size} town.",
    "{T} is a {size} town in the river country.",
    "{T} is a {size} town with narrow streets and a market square.",
    "{T} is one of the {size} towns of the valley.",
)
TOWN_FLAVOUR = (
    "An old bridge crosses the river near the market square.",
    "Every spring the town holds a fair.",
    "The streets are narrow and the houses have steep roofs.",
    "In hard winters the river freezes over.",
    "A road leads from the town gate into the hills.",
    "The town hall has a tall clock tower.",
)
PERSON_T = {
    "job": (
        "{First} works as a {job}.",
        "{First} has been a {job} for many years.",
        "{Pron} earns {poss} living as a {job}.",
    ),
    "home": (
        "{First} lives in {T}.",
        "{Pron} has spent {poss} whole life in {T}.",
        "{First}'s house stands in {T}, near the market.",
        "{Pron} comes from {T}.",
    ),
    "pet": (
        "{Pron} keeps a {sp} called {pn}.",
        "{First} has a pet {sp} named {pn}.",
        "{pn}, {poss} {sp}, follows {obj} everywhere.",
        "At home {First} looks after a {sp} called {pn}.",
    ),
    "age": ("{Pron} is {age} years old.", "{First} is {age}."),
}
ANIMAL_T = {
    "colour": (
        "{Sps} have {colour} fur.",
        "The coat of a {sp} is {colour}.",
        "Most {sps} are {colour}.",
        "You can tell a {sp} by its {colour} coat.",
    ),
    "food": (
        "{Sps} eat {food}.",
        "The {sp} feeds mostly on {food}.",
        "A hungry {sp} will search all day for {food}.",
        "Their favourite food is {food}.",
    ),
    "habitat": (
        "{Sps} live in the {hab}.",
        "The {sp} makes its home in the {hab}.",
        "Wild {sps} are common in the {hab}.",
        "In the {hab} you may see a {sp} at dusk.",
    ),
}
ANIMAL_FLAVOUR = (
    "Young {sps} stay close to their mothers for a year.",
    "In winter the {sp} sleeps for long hours.",
    "The {sp} is shy and runs from loud noises.",
    "{Sps} call to each other with a soft whistle.",
    "A {sp} can swim across a stream when it must.",
)
THING_T = {
    "material": ("It is made of {mat}.", "The {O} was made from {mat}.", "The {O} is made entirely of {mat}."),
    "owner": (
        "It belongs to {owner}.",
        "{owner} owns the {O}.",
        "Today the {O} is kept by {owner}.",
        "The {O} is now in the hands of {owner}.",
    ),
    "made_in": ("It was made in {T}.", "Craftspeople in {T} made the {O} long ago."),
}
THING_FLAVOUR = (
    "People say it is older than the town walls.",
    "On feast days it is shown in the square.",
    "It was mended once, after a bad fall.",
    "Visitors often ask to see it.",
)


def _town_size(population: int) -> str:
    return "small" if population < 1500 else "quiet" if population < 3000 else "busy" if population < 10000 else "large"


def _fields(e) -> dict:
    if isinstance(e, Town):
        return {
            "T": e.name,
            "R": e.river,
            "P": e.population,
            "F": e.founder,
            "Y": e.founded_year,
            "C": e.craft,
            "size": _town_size(e.population),
        }
    if isinstance(e, Person):
        return {
            "N": e.full,
            "First": e.first,
            "job": e.job,
            "T": e.home,
            "sp": e.pet,
            "pn": e.pet_name,
            "age": e.age,
            "Pron": e.pronoun.capitalize(),
            "poss": e.poss,
            "obj": e.obj,
        }
    if isinstance(e, Animal):
        return {
            "sp": e.name,
            "Sp": e.name.capitalize(),
            "sps": e.plural,
            "Sps": e.plural.capitalize(),
            "colour": e.colour,
            "food": e.food,
            "hab": e.habitat,
            "size": e.size,
        }
    return {"O": e.name, "kind": e.kind, "mat": e.material, "owner": e.owner, "T": e.made_in}


def _intro(e, rng: Rng, f: dict) -> tuple[str, tuple[str, ...]]:
    """Opening sentence naming the entity, and the attributes it already states."""
    if isinstance(e, Town):
        return rng.pick(TOWN_INTRO).format(**f), ()
    if isinstance(e, Person):
        return rng.pick(
            (
                (f"{e.full} is a {e.job} who lives in {e.home}.", ("job", "home")),
                (f"{e.full} is a {e.job} from {e.home}.", ("job", "home")),
                (f"{e.full} lives in {e.home}.", ("home",)),
                (f"{e.full} is a {e.job}.", ("job",)),
            )
        )
    if isinstance(e, Animal):
        return rng.pick(
            (
                (f"The {e.name} is a {e.size} animal.", ()),
                (f"The {e.name} is a {e.size} {e.colour} animal.", ("colour",)),
                (f"The {e.name} is a {e.size} creature that lives in the {e.habitat}.", ("habitat",)),
            )
        )
    return rng.pick(
        (
            (f"The {e.name} is an old {e.kind}.", ()),
            (f"The {e.name} is a {e.material} {e.kind}.", ("material",)),
            (f"The {e.name} is a famous {e.kind} made of {e.material}.", ("material",)),
        )
    )


def _templates(e) -> dict:
    return {Town: TOWN_T, Person: PERSON_T, Animal: ANIMAL_T, Thing: THING_T}[type(e)]


def _extras(e, world: World, rng: Rng) -> list[str]:
    """Sentences about related entities (difficulty 3), true in the world."""
    out: list[str] = []
    if isinstance(e, Town):
        for other in [t for t in world.towns if t.river == e.river and t.name != e.name][:1]:
            out.append(
                rng.pick(
                    (f"{other.name} also lies on the {e.river}.", f"Further along the {e.river} lies {other.name}.")
                )
            )
        people = world.residents(e.name)
        if len(people) >= 2:
            a, b = rng.sample(people, 2)
            out.append(f"Among the people of {e.name} are {a.full}, a {a.job}, and {b.full}, a {b.job}.")
        out += [f"The {t.name} was made in {e.name}." for t in world.things if t.made_in == e.name][:1]
        out += rng.sample(TOWN_FLAVOUR, 2)
    elif isinstance(e, Person):
        activity, _, _, _, place = JOBS[e.job]
        out.append(
            rng.pick((f"Each day {e.first} {activity}.", f"{e.pronoun.capitalize()} spends most days at the {place}."))
        )
        out += [f"{e.first} owns the {t.name}, a {t.material} {t.kind}." for t in world.owned_by(e.full)][:1]
        town = world.by_name[e.home]
        out.append(f"{town.name} lies on the {town.river}, and {e.first} often walks along its banks.")
        pet = world.by_name[e.pet]
        out.append(f"Like other {pet.plural}, {e.pet_name} likes to eat {pet.food}.")
    elif isinstance(e, Animal):
        for p in world.keepers_of(e.name)[:1]:
            out.append(f"Some people keep {e.plural} as pets; {p.full} of {p.home} has one called {p.pet_name}.")
        out += [s.format(sp=e.name, sps=e.plural, Sps=e.plural.capitalize()) for s in rng.sample(ANIMAL_FLAVOUR, 2)]
    else:
        owner = world.by_name[e.owner]
        out.append(f"{owner.full} is a {owner.job} from {owner.home}.")
        out.append(f"{owner.first} keeps it at home beside the window.")
        out += rng.sample(THING_FLAVOUR, 2)
    return out


def _choose_mentions(e, rng: Rng, stated: tuple[str, ...], difficulty: int) -> list[str]:
    rest = [a for a in _templates(e) if a not in stated]
    rng.shuffle(rest)
    keep = {1: 1 if isinstance(e, (Animal, Thing)) else 2, 2: len(rest), 3: len(rest)}[difficulty]
    return rest[:keep]


def _refer(sentence: str, e, rng: Rng) -> str:
    """Replace a leading repeated name by a pronoun or "the town" now and then (reads less like a list)."""
    if isinstance(e, Town):
        lead, alt = e.name, "The town"
    elif isinstance(e, Person):
        lead, alt = e.first, e.pronoun.capitalize()
    elif isinstance(e, Thing):
        lead, alt = f"The {e.name}", "It"
    else:
        return sentence  # animal sentences already vary between "The x" and "Xs"
    if sentence.startswith(lead + " ") and rng.chance(0.4):
        return alt + sentence[len(lead) :]
    return sentence


def _title(e) -> str:
    return e.full if isinstance(e, Person) else e.name.capitalize() if isinstance(e, Animal) else e.name


def render_entry(
    e, world: World, rng: Rng, difficulty: int, falsify: str | None = None, self_contradict: bool = False
) -> str:
    """One encyclopedic entry about ``e``.

    Args:
        e: the entity (Town, Person, Animal or Thing).
        difficulty: 1 (intro + a fact or two), 2 (all facts), 3 (all facts + related entities, 2 paragraphs).
        falsify: an attribute to state wrongly (contradicting entries); it is always mentioned.
        self_contradict: state ``falsify`` rightly, then later once more with the wrong value.
    """
    shown = dataclasses.replace(e, **{falsify: wrong_value(e, falsify, world, rng)}) if falsify else e
    body_e = e if self_contradict else shown
    f = _fields(body_e)
    intro, stated = _intro(body_e, rng, f)
    mentions = _choose_mentions(e, rng, stated, difficulty)
    key = TEMPLATE_OF.get(falsify, falsify)  # the template group that states the falsified attribute
    if falsify and key not in stated and key not in mentions:
        if mentions:
            mentions[rng.int(0, len(mentions) - 1)] = key
        else:
            mentions.append(key)
    body = [_refer(rng.pick(_templates(e)[a]).format(**f), body_e, rng) for a in mentions]
    if difficulty == 3:
        body += _extras(body_e, world, rng)
    if self_contradict and falsify:
        again = rng.pick(_templates(e)[key]).format(**_fields(shown))
        body.insert(rng.int((len(body) + 1) // 2, len(body)), again)
    sentences = [intro] + body
    text = " ".join(sentences)
    if difficulty == 3 and len(sentences) > 5:
        cut = rng.int(3, len(sentences) - 2)
        text = " ".join(sentences[:cut]) + "\n\n" + " ".join(sentences[cut:])
    return f"{_title(e)}\n{text}" if rng.chance(0.3) else text


def wrong_value(e, attr: str, world: World, rng: Rng):
    """A plausible but false value of ``attr`` for entity ``e`` (same type of value, different)."""
    true = getattr(e, attr)
    if attr == "population":
        factor = rng.pick((0.4, 0.5, 0.6, 0.7, 1.4, 1.6, 2.0, 2.5))
        return max(10, int(round(true * factor / 10.0)) * 10)
    if attr == "founded_year":
        return true + rng.pick((-1, 1)) * rng.int(15, 150)
    pools = {
        "river": world.rivers,
        "craft": CRAFTS,
        "founder": world.founders,
        "job": list(JOBS),
        "home": [t.name for t in world.towns],
        "pet": [a.name for a in world.animals],
        "colour": COLOURS,
        "food": FOODS,
        "habitat": HABITATS,
        "material": MATERIALS,
        "owner": [p.full for p in world.people],
    }
    return rng.pick([v for v in pools[attr] if v != true])


def _pick_entity(world: World, rng: Rng):
    kind = rng.weighted(("town", "person", "animal", "thing"), (3, 4, 2, 2))
    return rng.pick({"town": world.towns, "person": world.people, "animal": world.animals, "thing": world.things}[kind])


def encyclopedia(world: World, rng: Rng, difficulty: int) -> str:
    """A clean encyclopedic entry about a random entity, consistent with the world."""
    return render_entry(_pick_entity(world, rng), world, rng, difficulty)


def contradiction(world: World, rng: Rng, difficulty: int) -> str:
    """An entry that states one checked fact wrongly (70%) or both rightly and wrongly (30%)."""
    e = _pick_entity(world, rng)
    attr = rng.pick(CHECKED[type(e)])
    return render_entry(e, world, rng, difficulty, falsify=attr, self_contradict=rng.chance(0.3))
