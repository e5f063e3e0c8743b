"""Synthetic GSM8K-style word problems with worked solutions, unlimited and reproducible by seed.

Each problem is a templated multi-step arithmetic story. Solutions follow GSM8K's format: one
step per line with calculator marks ``<<a*b=c>>`` and a final ``#### N`` line, so they mix with
GSM8K *train* data for the ``ledom-tiny`` default model. Used for training only — never evaluation.

Example:
    >>> rows = generate_problems(2, seed=0)
    >>> sorted(rows[0])
    ['answer', 'question', 'template']
    >>> rows == generate_problems(2, seed=0)
    True

CLI: ``python -m ledom_reason.training.synthetic_math --n 20000 --seed 0 --out synth.jsonl``
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path

NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Randy",
         "Mark", "Sofia", "Omar", "Lena", "Priya", "Carlos", "Mei", "Ivan", "Zoe", "Hassan"]
ITEMS = [("apples", "apple"), ("books", "book"), ("cookies", "cookie"), ("pencils", "pencil"),
         ("stickers", "sticker"), ("marbles", "marble"), ("cupcakes", "cupcake"), ("toy cars", "toy car"),
         ("shirts", "shirt"), ("flowers", "flower"), ("eggs", "egg"), ("cards", "card")]
PLACES = ["the market", "the fair", "school", "the bakery", "the library", "the park"]
DAYS = [("Monday", "Tuesday", "Wednesday"), ("April", "May", "June"), ("the morning", "the afternoon", "the evening")]


def _step(text: str, a: int, op: str, b: int) -> tuple[str, int]:
    """One solution line with a calculator mark; returns (line, result)."""
    r = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    sym = {"+": "+", "-": "-", "*": "*", "/": "/"}[op]
    return f"{text} {a}{sym}{b} = <<{a}{sym}{b}={r}>>{r}", r


Template = Callable[[random.Random], tuple[str, list[str], int]]


def _t_half_more(rng: random.Random) -> tuple[str, list[str], int]:
    n, (items, _), (d1, d2, _) = rng.choice(NAMES), rng.choice(ITEMS), rng.choice(DAYS)
    a = 2 * rng.randint(5, 60)
    q = (f"{n} sold {a} {items} in {d1}, and then she sold half as many {items} in {d2}. "
         f"How many {items} did {n} sell altogether in {d1} and {d2}?")
    s1, h = _step(f"{n} sold", a, "/", 2)
    s2, t = _step(f"{n} sold", a, "+", h)
    return q, [f"{s1} {items} in {d2}.", f"{s2} {items} altogether in {d1} and {d2}."], t


def _t_price_total(rng: random.Random) -> tuple[str, list[str], int]:
    n, (items, one) = rng.choice(NAMES), rng.choice(ITEMS)
    k, p, pay = rng.randint(2, 12), rng.randint(2, 15), 0
    cost = k * p
    pay = cost + rng.randint(1, 40)
    q = (f"{n} buys {k} {items} at {rng.choice(PLACES)}. Each {one} costs ${p}. "
         f"{n} pays with ${pay}. How much change does {n} get?")
    s1, c = _step("The total cost is", k, "*", p)
    s2, ch = _step(f"{n} gets", pay, "-", c)
    return q, [f"{s1} dollars.", f"{s2} dollars in change."], ch


def _t_rate_time(rng: random.Random) -> tuple[str, list[str], int]:
    n = rng.choice(NAMES)
    rate, hours, days = rng.randint(8, 30), rng.randint(2, 9), rng.randint(2, 6)
    q = f"{n} earns ${rate} an hour. {n} works {hours} hours a day for {days} days. How much does {n} earn?"
    s1, per_day = _step(f"Each day {n} earns", rate, "*", hours)
    s2, tot = _step(f"In {days} days {n} earns", per_day, "*", days)
    return q, [f"{s1} dollars.", f"{s2} dollars."], tot


def _t_groups_left(rng: random.Random) -> tuple[str, list[str], int]:
    n, (items, _) = rng.choice(NAMES), rng.choice(ITEMS)
    boxes, per, given = rng.randint(3, 12), rng.randint(4, 20), 0
    total = boxes * per
    given = rng.randint(1, total - 1)
    q = (f"{n} has {boxes} boxes with {per} {items} in each box. {n} gives away {given} {items}. "
         f"How many {items} does {n} have left?")
    s1, t = _step(f"{n} has", boxes, "*", per)
    s2, left = _step(f"After giving some away, {n} has", t, "-", given)
    return q, [f"{s1} {items}.", f"{s2} {items} left."], left


def _t_three_people(rng: random.Random) -> tuple[str, list[str], int]:
    a, b, c = rng.sample(NAMES, 3)
    items = rng.choice(ITEMS)[0]
    x, more, times = rng.randint(3, 40), rng.randint(2, 25), rng.randint(2, 4)
    q = (f"{a} has {x} {items}. {b} has {more} more {items} than {a}. {c} has {times} times as many {items} as {b}. "
         f"How many {items} do they have in total?")
    s1, yb = _step(f"{b} has", x, "+", more)
    s2, yc = _step(f"{c} has", yb, "*", times)
    s3, ab = _step(f"{a} and {b} have", x, "+", yb)
    s4, tot = _step("Together they have", ab, "+", yc)
    return q, [f"{s1} {items}.", f"{s2} {items}.", f"{s3} {items}.", f"{s4} {items}."], tot


def _t_share_equally(rng: random.Random) -> tuple[str, list[str], int]:
    n, (items, _) = rng.choice(NAMES), rng.choice(ITEMS)
    friends, each, extra = rng.randint(2, 9), rng.randint(3, 15), rng.randint(2, 30)
    bought = friends * each - extra
    if bought <= 0:
        bought, extra = friends * each, 0
    q = (f"{n} had {extra} {items} and bought {bought} more. {n} shares them equally among {friends} friends. "
         f"How many {items} does each friend get?")
    s1, tot = _step(f"{n} has", extra, "+", bought)
    s2, per = _step("Each friend gets", tot, "/", friends)
    return q, [f"{s1} {items}.", f"{s2} {items}."], per


def _t_discount(rng: random.Random) -> tuple[str, list[str], int]:
    n, (items, one) = rng.choice(NAMES), rng.choice(ITEMS)
    price = 10 * rng.randint(2, 20)
    pct = rng.choice([10, 20, 25, 50])
    k = rng.randint(2, 6)
    q = (f"A {one} costs ${price}. The shop gives a {pct}% discount. {n} buys {k} {items}. "
         f"How much does {n} pay?")
    off = price * pct // 100
    s1 = f"The discount is {price}*{pct}/100 = <<{price}*{pct}/100={off}>>{off} dollars."
    s2, new = _step(f"Each {one} costs", price, "-", off)
    s3, tot = _step(f"{n} pays", new, "*", k)
    return q, [s1, f"{s2} dollars.", f"{s3} dollars."], tot


TEMPLATES: dict[str, Template] = {
    "half_more": _t_half_more, "price_total": _t_price_total, "rate_time": _t_rate_time,
    "groups_left": _t_groups_left, "three_people": _t_three_people, "share_equally": _t_share_equally,
    "discount": _t_discount,
}


def generate_problems(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` problems as ``{"question", "answer", "template"}`` rows (GSM8K's field names)."""
    if n < 0:
        raise ValueError(f"`n` must be >= 0, got {n}")
    rng = random.Random(seed)
    names = sorted(TEMPLATES)
    rows = []
    for _ in range(n):
        name = rng.choice(names)
        q, steps, ans = TEMPLATES[name](rng)
        rows.append({"question": q, "answer": "\n".join([*steps, f"#### {ans}"]), "template": name})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    path = Path(a.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in generate_problems(a.n, a.seed):
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
