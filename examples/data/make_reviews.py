"""Generate examples/data/reviews.csv: 400 short product reviews labelled positive / negative.

The reviews are GENERATED, not collected: sentences are put together from hand-written
phrase lists by a seeded random generator, so the file is reproducible and free of anyone's
personal data or copyright. They are meant to look like real short reviews: several
products, mixed aspects ("the battery is great but the screen is dim"), negations ("not
worth the money"), intensifiers and filler, so a bag of words alone does not solve them and a
sequence model has something to learn. The label is the review's overall verdict, which the
last clause states; about 5% of the labels are flipped on purpose, as real annotations are
noisy too.

Run from the repository root (standard library only):

    python examples/data/make_reviews.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

ROWS = 400
SEED = 20240611
FLIPPED = 0.05  # share of labels flipped on purpose (annotation noise)

PRODUCTS = ["headphones", "phone", "laptop", "blender", "kettle", "backpack", "camera", "vacuum", "monitor", "watch"]
ASPECTS = {
    "headphones": ["sound", "bass", "fit", "cable", "microphone"],
    "phone": ["battery", "screen", "camera", "speaker", "charger"],
    "laptop": ["keyboard", "battery", "screen", "trackpad", "fan"],
    "blender": ["motor", "jug", "blades", "lid", "noise"],
    "kettle": ["handle", "lid", "switch", "spout", "noise"],
    "backpack": ["zipper", "straps", "pockets", "fabric", "stitching"],
    "camera": ["lens", "autofocus", "battery", "menu", "grip"],
    "vacuum": ["suction", "filter", "battery", "brush", "noise"],
    "monitor": ["panel", "stand", "colors", "brightness", "ports"],
    "watch": ["strap", "battery", "display", "buttons", "sensor"],
}
GOOD = [
    "great",
    "excellent",
    "solid",
    "superb",
    "reliable",
    "sturdy",
    "impressive",
    "comfortable",
    "fantastic",
    "decent",
]
BAD = ["terrible", "flimsy", "awful", "weak", "disappointing", "cheap", "useless", "noisy", "faulty", "poor"]
INTENSIFIERS = ["", "", "really ", "very ", "quite ", "surprisingly ", "absolutely "]
VERDICT_POS = [
    "I would buy it again.",
    "Highly recommended.",
    "Worth every penny.",
    "Five stars from me.",
    "Happy with this purchase.",
    "It does exactly what it promises.",
    "No regrets at all.",
]
VERDICT_NEG = [
    "I want a refund.",
    "Not worth the money.",
    "Would not recommend it.",
    "Returned it after a week.",
    "Avoid this one.",
    "I regret buying it.",
    "It broke within a month.",
]
NEGATED_POS = ["is not bad at all", "has never let me down", "gives me no reason to complain"]
NEGATED_NEG = ["is not great", "is not worth it", "has never worked properly", "is not what I expected"]
OPENERS = [
    "",
    "",
    "Bought this for my office. ",
    "Second one I own. ",
    "Got it as a gift. ",
    "Used it daily for a month. ",
]


def _clause(rng: random.Random, aspect: str, positive: bool) -> str:
    word = rng.choice(GOOD if positive else BAD)
    verb = "are" if aspect.endswith("s") else "is"
    return f"the {aspect} {verb} {rng.choice(INTENSIFIERS)}{word}"


def review(rng: random.Random, positive: bool) -> str:
    """One review whose overall verdict is ``positive``."""
    product = rng.choice(PRODUCTS)
    first, second = rng.sample(ASPECTS[product], 2)
    mixed = rng.random() < 0.35  # one aspect disagrees with the verdict
    body = f"{rng.choice(OPENERS)}The {product} works"
    body += f"; {_clause(rng, first, positive if not mixed else not positive)}"
    body += f" but {_clause(rng, second, positive)}" if mixed else f" and {_clause(rng, second, positive)}"
    if rng.random() < 0.4:
        body += f". Honestly, it {rng.choice(NEGATED_POS if positive else NEGATED_NEG)}"
    return f"{body}. {rng.choice(VERDICT_POS if positive else VERDICT_NEG)}"


def main(out: Path | None = None) -> None:
    """Write the reviews to ``out`` (default: reviews.csv next to this script)."""
    rng = random.Random(SEED)
    rows = []
    for i in range(ROWS):
        positive = i % 2 == 0
        label = positive if rng.random() >= FLIPPED else not positive
        rows.append((review(rng, positive), "positive" if label else "negative"))
    rng.shuffle(rows)
    out = out or Path(__file__).with_name("reviews.csv")
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "sentiment"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} reviews to {out}")


if __name__ == "__main__":
    main()
