"""The demo's fictional world: invented names and the facts every clean demo document agrees with.

Towns (river, population, founder, year founded, craft), people (job, home town, pet, age), animal
species (colour, food, habitat, size) and named objects (kind, material, owner, town where made).
Names come from a syllable generator, so no text of the demo can come from real-world text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Attribute vocabularies. They are pairwise disjoint, so a word names exactly one kind of fact.
COLOURS = ("grey", "brown", "white", "black", "red", "golden", "green", "blue", "yellow", "orange")
FOODS = ("acorns", "berries", "fish", "beetles", "grass", "seeds", "roots", "moss", "mushrooms", "worms")
HABITATS = ("forests", "marshes", "hills", "meadows", "caves", "reed beds", "pine woods", "moors")
SIZES = ("small", "large", "tiny")
CRAFTS = ("pottery", "wool", "salt", "cheese", "rope", "paper", "candles", "lace", "cider", "dyes")
MATERIALS = ("oak", "brass", "iron", "clay", "glass", "silver", "bone", "willow", "stone", "copper")
THING_KINDS = ("lamp", "bell", "cup", "chest", "clock", "drum", "ring", "key", "bowl", "flute", "mirror")

# job -> (what they do: present tense, base form, past tense; what they make or sell, plural; workplace)
JOBS = {
    "baker": ("bakes bread", "bake bread", "baked bread", "loaves", "bakery"),
    "smith": ("works at the forge", "work at the forge", "worked at the forge", "nails", "forge"),
    "weaver": ("weaves cloth", "weave cloth", "wove cloth", "blankets", "workshop"),
    "potter": ("shapes bowls on a wheel", "shape bowls on a wheel", "shaped bowls on a wheel", "jugs", "workshop"),
    "fisher": ("catches fish from a boat", "catch fish from a boat", "caught fish from a boat", "trout", "boat"),
    "miller": ("grinds flour", "grind flour", "ground flour", "sacks of flour", "mill"),
    "carpenter": (
        "builds tables and chairs",
        "build tables and chairs",
        "built tables and chairs",
        "stools",
        "workshop",
    ),
    "teacher": (
        "teaches the children to read",
        "teach the children to read",
        "taught the children to read",
        "slates",
        "school",
    ),
    "healer": ("cares for the sick", "care for the sick", "cared for the sick", "herb packets", "house"),
    "farmer": ("grows turnips and beans", "grow turnips and beans", "grew turnips and beans", "turnips", "farm"),
    "shepherd": ("watches the sheep", "watch the sheep", "watched the sheep", "fleeces", "hut"),
    "brewer": ("brews beer", "brew beer", "brewed beer", "barrels", "brewery"),
    "tailor": ("sews coats", "sew coats", "sewed coats", "coats", "shop"),
    "mason": ("cuts stone for walls", "cut stone for walls", "cut stone for walls", "blocks", "yard"),
    "scribe": ("copies old books", "copy old books", "copied old books", "letters", "study"),
}
TOWN_SUFFIXES = ("mere", "ford", "holt", "wick", "by", "stead", "dale", "moor", "ton", "well")
ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "j",
    "b",
    "d",
    "k",
    "l",
    "m",
    "n",
    "r",
    "s",
    "t",
    "v",
    "br",
    "dr",
    "gr",
    "tr",
    "st",
    "sk",
    "fl",
    "th",
)
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "a", "e", "o", "ai", "ou")
CODAS = ("n", "r", "l", "m", "n", "r", "l", "v", "th", "nd", "rn", "ld", "rk", "lt", "sk", "st")
SIMPLE_CODAS = ("n", "r", "l", "m", "n", "r", "l", "v", "nd", "rn", "ld")
# Invented names must never be ordinary words of the templates.
_RESERVED = set(
    """
a an and at bale ban band bane bark barn bash bath bell belt bend bent bile bill bin bind bite blade bode bold
bolt bond bone bore born both bout brain brave bride brown bun burn by cage cane cape cash cave code cold colt
cone core cork corn crown cure dale dark darn dash date dell den dent desk dim dine dire dish disk dive doll don
done door dope dote dove down drain drove drown drum dull dune dusk fade fair fan fate fell felt fern file fill
fin find fine fire fish five floor fold fond fore fork foul four frown full fun fund gage gain gale gape gate
gave gold gone gore gown grain grave grove gull gum gun gush hail hair hale hand hate have he held hen her here
hide hill hilt him hint hire his hive hold hole hope horn hour hull hum hunt hush husk in is isle it jade jolt
june kale kill kilt kind kite kith lair land lane lark lash late lend lent line lint live lode lone lore loud
lout love lure lush lute made mail main male man mane mark mash mask mate math melt men mend mere mile mill mind
mine mint mire mite mode mold mole molt moor mope more mote moth move mule mute myth nail nape nine node note
noun nun of on our page pail pain pair pale pan pane pant park path pave pelt pen pile pill pin pine pipe pith
plain plate plum pole poll pond poor pope pore pork pour pout pride pull punt pure quote rage rail rain rant
rash rate rave rent ride rim ripe risk rite rode role roll rope rote rule rum run rune runt rush sage sail sale
sand sane sate save sell send sent shade she shone shore shout side silt sin sire site skate skim slain slate
slide slim slum snout sold sole son sore soul sour spade spite stage stain stair state stem stone store stove
sum sun sure tail tale tan tape task tell ten tend tent the their them thin tide tile till tilt tin tint tire to
told toll ton tone tore torn tote tour tout town trade train trim trout trove tune turn tusk vain vale van vane
vile vim vine vole vote wade wage wail wand wane want wash wave well welt went were whole wide wild wile will
win wind wine wipe wire wish with won wore work worn yarn your yule zone
""".split()
)


class Rng:
    """Seeded ``random.Random`` with the few helpers the generators use (string seeds are stable)."""

    def __init__(self, *parts: object):
        self._r = random.Random("|".join(str(p) for p in parts))

    def pick(self, seq):
        return seq[self._r.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        return self._r.random() < p

    def int(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi] (both ends included)."""
        return self._r.randint(lo, hi)

    def float(self) -> float:
        return self._r.random()

    def sample(self, seq, k: int) -> list:
        return self._r.sample(list(seq), k)

    def shuffle(self, items: list) -> None:
        self._r.shuffle(items)

    def weighted(self, options, weights):
        return self._r.choices(list(options), weights=list(weights), k=1)[0]


@dataclass(frozen=True)
class Town:
    name: str
    river: str
    population: int
    founder: str
    founded_year: int
    craft: str


@dataclass(frozen=True)
class Person:
    first: str
    family: str
    pronoun: str  # "she" | "he"
    job: str
    home: str  # town name
    pet: str  # animal species name
    pet_name: str
    age: int

    @property
    def full(self) -> str:
        return f"{self.first} {self.family}"

    @property
    def poss(self) -> str:
        return "her" if self.pronoun == "she" else "his"

    @property
    def obj(self) -> str:
        return "her" if self.pronoun == "she" else "him"


@dataclass(frozen=True)
class Animal:
    name: str  # lower case species name, e.g. "grel"
    colour: str
    food: str
    habitat: str
    size: str

    @property
    def plural(self) -> str:
        return self.name + "s"


@dataclass(frozen=True)
class Thing:
    name: str  # e.g. "Oskel Bell"
    kind: str
    material: str
    owner: str  # full name of a person
    made_in: str  # town name


@dataclass
class World:
    """All entities of one demo world, with lookups by name."""

    seed: int
    towns: list[Town]
    people: list[Person]
    animals: list[Animal]
    things: list[Thing]
    by_name: dict[str, object] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.by_name = {t.name: t for t in self.towns}
        self.by_name.update({p.full: p for p in self.people})
        self.by_name.update({a.name: a for a in self.animals})
        self.by_name.update({t.name: t for t in self.things})

    @property
    def rivers(self) -> list[str]:
        return sorted({t.river for t in self.towns})

    @property
    def founders(self) -> list[str]:
        return [t.founder for t in self.towns]

    def residents(self, town: str) -> list[Person]:
        return self._index("home", self.people).get(town, [])

    def owned_by(self, full_name: str) -> list[Thing]:
        return self._index("owner", self.things).get(full_name, [])

    def keepers_of(self, species: str) -> list[Person]:
        return self._index("pet", self.people).get(species, [])

    def _index(self, attr: str, items: list) -> dict[str, list]:
        """Entities grouped by ``attr`` (built once; lists keep the world's order)."""
        key = f"_by_{attr}"
        if key not in self.__dict__:
            groups: dict[str, list] = {}
            for item in items:
                groups.setdefault(getattr(item, attr), []).append(item)
            self.__dict__[key] = groups
        return self.__dict__[key]

    def fact_rows(self) -> list[dict]:
        """Every fact of the world as {"entity", "type", "attribute", "value"} rows (for explanations)."""
        rows = []
        for kind, items, key in (
            ("town", self.towns, "name"),
            ("person", self.people, "full"),
            ("animal", self.animals, "name"),
            ("object", self.things, "name"),
        ):
            for item in items:
                name = getattr(item, key)
                for attr, value in vars(item).items():
                    if attr not in ("name", "first", "family"):
                        rows.append({"entity": name, "type": kind, "attribute": attr, "value": str(value)})
        return rows

    def summary(self) -> dict:
        return {
            "towns": len(self.towns),
            "people": len(self.people),
            "animals": len(self.animals),
            "objects": len(self.things),
            "rivers": len(self.rivers),
        }


class _Names:
    """Unique invented names: every name is new (case-insensitively) and never a reserved word."""

    def __init__(self, rng: Rng):
        self.rng = rng
        self.used: set[str] = set(_RESERVED) | set(JOBS) | set(COLOURS) | set(FOODS) | set(MATERIALS)
        self.used |= set(CRAFTS) | set(THING_KINDS) | set(SIZES)

    def _syllable(self, closed: bool, simple: bool = True) -> str:
        s = self.rng.pick(ONSETS) + self.rng.pick(VOWELS)
        return s + self.rng.pick(SIMPLE_CODAS if simple else CODAS) if closed else s

    def _unique(self, make) -> str:
        for _ in range(10_000):
            name = make()
            if name.lower() not in self.used and 3 <= len(name) <= 12:
                self.used.add(name.lower())
                return name
        raise RuntimeError("the name generator ran out of fresh names")  # cannot happen at demo sizes

    def first(self) -> str:
        return self._unique(lambda: (self._syllable(False) + self._syllable(self.rng.chance(0.5))).capitalize())

    def family(self) -> str:
        return self._unique(lambda: (self._syllable(self.rng.chance(0.6)) + self._syllable(True)).capitalize())

    def town(self) -> str:
        return self._unique(lambda: (self._syllable(self.rng.chance(0.5)) + self.rng.pick(TOWN_SUFFIXES)).capitalize())

    def river(self) -> str:
        return self._unique(
            lambda: (self._syllable(True, simple=False) + self.rng.pick(("", "", "a", "e"))).capitalize()
        )

    def species(self) -> str:
        # Lower case, simple final consonant so the plural is name + "s"; consonant first so "a <name>" reads.
        return self._unique(lambda: self._syllable(False) + self._syllable(True))

    def pet(self) -> str:
        return self._unique(lambda: (self._syllable(False) + self._syllable(False)).capitalize())

    def thing(self, kind: str) -> str:
        return (
            self._unique(lambda: (self._syllable(False) + self._syllable(True)).capitalize()) + " " + kind.capitalize()
        )


def build_world(seed: int, scale: float = 1.0) -> World:
    """Invent a world from ``seed`` (same seed and scale, same world).

    Args:
        seed: generator seed.
        scale: size factor; 1.0 gives 24 towns on 12 rivers, 96 people, 20 animals and 40 objects.

    Returns:
        The World.
    """
    n_towns, people_per_town = max(2, round(24 * scale)), 4
    n_animals, n_things = max(4, round(20 * scale)), max(4, round(40 * scale))
    rng = Rng("world", seed)
    names = _Names(rng)
    rivers = [names.river() for _ in range((n_towns + 1) // 2)]
    town_names = [names.town() for _ in range(n_towns)]
    towns = [
        Town(
            name,
            rivers[i // 2],
            int(10 ** (2.4 + 2.0 * rng.float()) / 10) * 10,
            f"{names.first()} {names.family()}",
            rng.int(300, 990),
            rng.pick(CRAFTS),
        )
        for i, name in enumerate(town_names)
    ]
    animals = [
        Animal(names.species(), rng.pick(COLOURS), rng.pick(FOODS), rng.pick(HABITATS), rng.pick(SIZES))
        for _ in range(n_animals)
    ]
    people = [
        Person(
            names.first(),
            names.family(),
            rng.pick(("she", "he")),
            rng.pick(list(JOBS)),
            town.name,
            rng.pick(animals).name,
            names.pet(),
            rng.int(18, 80),
        )
        for town in towns
        for _ in range(people_per_town)
    ]
    things = []
    for _ in range(n_things):
        kind = rng.pick(THING_KINDS)
        things.append(Thing(names.thing(kind), kind, rng.pick(MATERIALS), rng.pick(people).full, rng.pick(towns).name))
    return World(seed, towns, people, animals, things)
