"""The gate's evaluation corpus: runbooks of made-up services, generated deterministically.

Why generated and not the repository's docs alone: a fresh stack holds a handful of documents,
and with k = 5 a ranker that ignores the query still returns the right one most of the time
(issue 14 measured 66% passes). Here every golden question has its own answering document among
hundreds, and every target has near-miss distractors: services sharing its adjective or its
animal, with the same template and vocabulary. So only a ranker that reads the question finds
the answer; a query-blind one hits at most `top_k` of the questions (tests/unit/test_gate_power.py
simulates it).

Every key lies under `PREFIX`, a reserved prefix the gate seeds and deletes afterwards, so the
corpus never mixes with a tenant's documents. The same `seed` yields byte-identical documents
and questions on every machine (Python's `random.Random` is specified to be reproducible for a
given seed: https://docs.python.org/3/library/random.html#notes-on-reproducibility).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PREFIX = "postdeploy-eval/"

_ADJECTIVES = [
    "amber",
    "azure",
    "brisk",
    "cobalt",
    "crimson",
    "dusty",
    "emerald",
    "frosty",
    "golden",
    "hollow",
    "ivory",
    "jade",
    "lunar",
    "misty",
    "noble",
    "olive",
    "polar",
    "quiet",
    "rapid",
    "scarlet",
    "silent",
    "silver",
    "solar",
    "stormy",
    "velvet",
]
_ANIMALS = [
    "badger",
    "beaver",
    "bison",
    "condor",
    "coyote",
    "falcon",
    "ferret",
    "gecko",
    "heron",
    "ibis",
    "jackal",
    "lemur",
    "lynx",
    "marmot",
    "osprey",
    "otter",
    "panda",
    "puffin",
    "raven",
    "salmon",
    "stoat",
    "tapir",
    "walrus",
    "weasel",
    "yak",
]
_TEAMS = [
    "payments",
    "identity",
    "search",
    "billing",
    "growth",
    "platform",
    "messaging",
    "catalog",
    "checkout",
    "analytics",
    "logistics",
    "support",
]
_STORES = ("PostgreSQL", "DynamoDB", "Redis", "S3", "OpenSearch", "Aurora MySQL", "SQLite", "Kafka")
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-2", "ap-northeast-1")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


@dataclass(frozen=True)
class Runbook:
    key: str
    title: str
    text: str
    service: str


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    relevant: str


@dataclass(frozen=True)
class EvalCorpus:
    documents: tuple[Runbook, ...]
    questions: tuple[EvalQuestion, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.documents)


def _runbook(rng: random.Random, adjective: str, animal: str) -> tuple[Runbook, dict[str, str]]:
    facts = {
        "name": f"{adjective} {animal}",
        "slug": f"{adjective}-{animal}",
        "team": rng.choice(_TEAMS),
        "port": str(rng.randrange(1025, 65000)),
        "store": rng.choice(_STORES),
        "region": rng.choice(_REGIONS),
        "day": rng.choice(_WEEKDAYS),
    }
    text = (
        f"# Runbook: the {facts['name']} service\n\n"
        f"The {facts['name']} service is owned by the {facts['team']} team and listens on port "
        f"{facts['port']}. It keeps its state in {facts['store']} in {facts['region']}.\n\n"
        f"To restart {facts['name']}, run `svcctl restart {facts['slug']} --region {facts['region']}` "
        f"and watch the {facts['slug']}-errors alarm until it clears.\n\n"
        f"Deploys of {facts['name']} are frozen on {facts['day']}s; page the {facts['team']} "
        f"on-call rotation before any change.\n"
    )
    key = f"{PREFIX}runbook-{facts['slug']}.md"
    return Runbook(key, f"Runbook: the {facts['name']} service", text, facts["slug"]), facts


_QUESTIONS = (
    "Which port does the {name} service listen on?",
    "How do I restart the {name} service?",
    "Which team owns {name}?",
    "Where does the {name} service keep its state?",
    "On which day are deploys of {name} frozen?",
    "Which alarm should I watch after restarting {name}?",
)


def generate(documents: int = 300, questions: int = 60, seed: int = 14) -> EvalCorpus:
    """`documents` runbooks; `questions` of them are targets, each asked about once."""
    pairs = [(a, b) for a in _ADJECTIVES for b in _ANIMALS]
    if not 0 < questions <= documents <= len(pairs):
        raise ValueError(f"need 0 < questions <= documents <= {len(pairs)}, got {questions}, {documents}")
    rng = random.Random(seed)
    chosen = rng.sample(pairs, documents)
    books = [_runbook(rng, adjective, animal) for adjective, animal in chosen]
    targets = rng.sample(range(documents), questions)
    asked = tuple(
        EvalQuestion(_QUESTIONS[i % len(_QUESTIONS)].format(**books[t][1]), books[t][0].key)
        for i, t in enumerate(targets)
    )
    return EvalCorpus(tuple(book for book, _ in books), asked)
