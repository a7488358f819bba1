"""Prompts of the `broad-smollm2` dataset: everyday questions whose answer can be computed or is
a fixed fact, of graded size, in the shapes people send them.

Kinds (each with an exact gold answer): `arith` (sums to 4-digit products), `units` (metric and
time conversions, whole to decimal), `dates` (weekdays and months after an offset of 1 to 900
days), `strings` (first/last letter, length, reversal, letter counts of words and of random
strings up to 14 letters), `facts` (fixed facts: legs of animals, opposites, colours, days in a
month, ...). Shapes: `bare` (the question), `greeting` (a line of small talk first), `chat`
(a transcript of earlier turns, the question last), `options` (four lettered options),
`chatty` (the question inside several sentences of chat). The shape and kind are metadata for
reports; labels come only from the model's answers (see build_broad_dataset.py).
"""

from __future__ import annotations

import random

from uncertainty_prompts import CHOICE_INSTRUCTION, NUMBER_INSTRUCTION

TEXT_INSTRUCTION = "Answer with one word."

ARITH_LEVELS = [("+", 1, 1), ("+", 2, 1), ("-", 1, 1), ("*", 1, 1), ("+", 2, 2), ("-", 2, 2),
                ("*", 2, 1), ("+", 3, 3), ("*", 2, 2), ("-", 4, 3), ("*", 3, 2), ("*", 4, 4)]
"""From 1-digit sums to 4x4-digit products: a grade the model's errors can follow."""
WORDS = [
    "sun", "tree", "book", "lamp", "frog", "milk", "door", "rain", "ship", "bird", "cake",
    "road", "fish", "moon", "hand", "star", "wolf", "river", "garden", "window", "pencil",
    "orange", "rabbit", "silver", "winter", "planet", "bottle", "candle", "ladder", "blanket",
    "kitchen", "morning", "thunder", "library", "diamond", "pumpkin", "holiday", "mountain",
    "notebook", "elephant", "umbrella", "sandwich", "airplane", "hospital", "computer",
    "calendar", "triangle", "festival", "strawberry", "basketball", "chocolate", "dictionary",
    "helicopter", "watermelon"
]
UNITS = [("centimetres", "metre", 100), ("millimetres", "centimetre", 10), ("grams", "kilogram",
         1000), ("minutes", "hour", 60), ("seconds", "minute", 60), ("hours", "day", 24),
         ("metres", "kilometre", 1000), ("millilitres", "litre", 1000), ("days", "week", 7),
         ("months", "year", 12)]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
FACTS = [
    ("How many legs does a spider have?", "8"), ("How many legs does a dog have?", "4"),
    ("How many legs does an insect have?", "6"), ("How many wheels does a bicycle have?", "2"),
    ("How many wheels does a tricycle have?", "3"), ("How many days are in a week?", "7"),
    ("How many months are in a year?", "12"), ("How many hours are in a day?", "24"),
    ("How many minutes are in an hour?", "60"), ("How many sides does a triangle have?", "3"),
    ("How many sides does a square have?", "4"), ("How many sides does a hexagon have?", "6"),
    ("How many sides does an octagon have?", "8"), ("How many players are on a soccer team "
                                                     "on the field?", "11"),
    ("How many continents are there?", "7"), ("How many cents are in a dollar?", "100"),
    ("How many days are in a leap year?", "366"), ("How many strings does a violin have?", "4"),
    ("How many eyes does a person have?", "2"), ("How many fingers are on one hand?", "5"),
    ("How many days does February have in a leap year?", "29"),
    ("How many zeros are in one thousand?", "3"), ("How many letters are in the English "
                                                   "alphabet?", "26"),
    ("What colour is grass?", "green"), ("What colour is the sky on a sunny day?", "blue"),
    ("What colour is snow?", "white"), ("What colour are ripe bananas?", "yellow"),
    ("What colour is coal?", "black"), ("What is the opposite of hot?", "cold"),
    ("What is the opposite of up?", "down"), ("What is the opposite of big?", "small"),
    ("What is the opposite of day?", "night"), ("What is the opposite of left?", "right"),
    ("What is the opposite of open?", "closed"), ("What is the opposite of fast?", "slow"),
    ("What is the opposite of happy?", "sad"), ("What animal says moo?", "cow"),
    ("What animal says meow?", "cat"), ("What animal barks?", "dog"),
    ("What do bees make?", "honey"), ("What is frozen water called?", "ice"),
    ("What is the capital of Japan?", "Tokyo"), ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Germany?", "Berlin"), ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Egypt?", "Cairo"), ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Russia?", "Moscow"), ("What is the capital of England?", "London"),
    ("Which planet do we live on?", "Earth"), ("What is the largest ocean on Earth?",
                                               "Pacific"),
    ("Which planet is known as the red planet?", "Mars"), ("What gas do people breathe in to "
                                                           "live?", "oxygen"),
    ("What is the first day of the week after Sunday?", "Monday"),
    ("What month comes after May?", "June"), ("What is the first month of the year?",
                                              "January"),
    ("What season comes after winter?", "spring"), ("What season comes after summer?",
                                                    "autumn"),
    ("Which is heavier, a kilogram of iron or a gram of iron?", "kilogram"),
    ("What do you call a baby dog?", "puppy"), ("What do you call a baby cat?", "kitten"),
    ("What do cows drink to make milk?", "water"), ("What shape has no corners?", "circle"),
    ("In which direction does the sun rise?", "east"),
    ("In which direction does the sun set?", "west"),
]
"""Fixed facts with one-word or numeric gold answers (written for this dataset)."""

GREETINGS = ["Hi!", "Hello there.", "Hey, quick question.", "Good morning!", "Hi, hope you're "
             "well.", "Hey!", "Hello, I have a small question.", "Good evening."]
CHAT_OPENERS = [("Hi!", "Hello! How can I help you today?"),
                ("Good morning.", "Good morning! What can I do for you?"),
                ("Thanks for the help yesterday.", "You're welcome! Anything else?"),
                ("Hey, are you there?", "Yes, I'm here. What do you need?"),
                ("I have a homework question.", "Sure, go ahead and ask.")]
CHATTY_BEFORE = [
    "Hey there! I hope your week is going better than mine, it has been raining non-stop and "
    "the cat refuses to go outside.",
    "Good afternoon! I'm sitting in a cafe with a cup of tea and a slice of lemon cake, and my "
    "friend and I started a silly little debate.",
    "Hello! My daughter is doing her homework at the kitchen table and she asked me something "
    "that I should really know, but my brain is tired after work.",
    "Hi, sorry to bother you with something so small. I was tidying up the garage this weekend "
    "and found a box of my old school notebooks, which brought back memories.",
    "So I'm on a long train ride right now, the wifi keeps dropping and I've already finished "
    "my book, so I'm playing a little quiz game with my brother over text.",
    "Morning! We're planning a family picnic for Saturday and my grandmother, who is turning "
    "ninety, loves trivia, so I'm collecting easy questions for her.",
    "Hey! I just got back from the gym and I'm making dinner, pasta again, and my roommate "
    "shouted a question at me from the other room.",
    "Hi! I'm a primary school teacher and I'm putting together a warm-up sheet for my class "
    "tomorrow morning, and I want to double-check one of the answers.",
]
CHATTY_AFTER = [
    "Thanks so much, you're a lifesaver!", "No need to explain, just the answer please.",
    "I'll let her know, she'll be thrilled.", "Cheers, have a lovely day!",
    "Thank you! Back to my tea now.", "Appreciate it, talk soon.",
]


def arith(rng: random.Random) -> tuple[str, str, str]:
    op, da, db = rng.choice(ARITH_LEVELS)
    a = rng.randint(10 ** (da - 1) if da > 1 else 1, 10**da - 1)
    b = rng.randint(10 ** (db - 1) if db > 1 else 1, 10**db - 1)
    if op == "-" and b > a:
        a, b = b, a
    value = a + b if op == "+" else a - b if op == "-" else a * b
    return f"What is {a} {op} {b}?", str(value), "number"


def units(rng: random.Random) -> tuple[str, str, str]:
    small, big, factor = rng.choice(UNITS)
    amount = rng.choice([1, 2, 3, 5, 10, rng.randint(2, 99), rng.randint(2, 999) / 10,
                         rng.randint(101, 9999) / 100])
    value = round(amount * factor, 6)
    text = f"{amount:g} {big}" + ("" if amount == 1 else "s")
    return f"How many {small} are in {text}?", f"{value:g}", "number"


def dates(rng: random.Random) -> tuple[str, str, str]:
    offset = rng.choice([1, 2, 3, rng.randint(4, 13), rng.randint(14, 100), rng.randint(100, 900)])
    if rng.random() < 0.6:
        start = rng.randrange(7)
        unit = "day" if offset == 1 else "days"
        return (f"What day of the week is it {offset} {unit} after a {DAYS[start]}?",
                DAYS[(start + offset) % 7], "text")
    start, months = rng.randrange(12), min(offset, 40)
    unit = "month" if months == 1 else "months"
    return (f"Which month is it {months} {unit} after {MONTHS[start]}?",
            MONTHS[(start + months) % 12], "text")


def strings(rng: random.Random) -> tuple[str, str, str]:
    word = rng.choice(WORDS)
    if rng.random() < 0.3:  # random letters: no memorised spelling to lean on
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 14)))
    kind = rng.randrange(5)
    if kind == 0:
        return f'What is the first letter of the word "{word}"?', word[0], "text"
    if kind == 1:
        return f'What is the last letter of "{word}"?', word[-1], "text"
    if kind == 2:
        return f'How many letters are in "{word}"?', str(len(word)), "number"
    if kind == 3:
        return f'Write "{word}" backwards.', word[::-1], "text"
    letter = rng.choice(word)
    return f'How many times does the letter "{letter}" appear in "{word}"?', \
        str(word.count(letter)), "number"


def facts(rng: random.Random) -> tuple[str, str, str]:
    question, answer = rng.choice(FACTS)
    return question, answer, "number" if answer.isdigit() else "text"


KINDS = {"arith": arith, "units": units, "dates": dates, "strings": strings, "facts": facts}
SHAPES = {"bare": 0.3, "greeting": 0.15, "chat": 0.15, "options": 0.15, "chatty": 0.25}


def with_options(question: str, answer: str, kind: str, rng: random.Random) -> tuple[str, str]:
    """Four lettered options, one of them the gold answer; returns (prompt, gold letter)."""
    if kind == "number":
        gold = float(answer)
        spread = max(1, int(abs(gold) * 0.1)) if gold == int(gold) else 0.5
        wrong: set[str] = set()
        while len(wrong) < 3:
            delta = rng.choice([-3, -2, -1, 1, 2, 3]) * spread
            candidate = f"{gold + delta:g}"
            if candidate != answer:
                wrong.add(candidate)
        options = [answer, *wrong]
    else:
        pool = next((group for group in (DAYS, MONTHS) if answer in group), None)
        if pool is None:
            pool = list("abcdefghijklmnopqrstuvwxyz") if len(answer) == 1 else \
                [a for _, a in FACTS if not a.isdigit()] + WORDS
        options = [answer, *rng.sample([p for p in dict.fromkeys(pool) if p != answer], 3)]
    rng.shuffle(options)
    lines = "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(options))
    return f"{question}\n{lines}", "ABCD"[options.index(answer)]


def shaped(question: str, shape: str, rng: random.Random) -> str:
    if shape == "greeting":
        return f"{rng.choice(GREETINGS)} {question}"
    if shape == "chat":
        user, assistant = rng.choice(CHAT_OPENERS)
        return f"User: {user}\nAssistant: {assistant}\nUser: {question}"
    if shape == "chatty":
        middle = rng.choice(["Anyway, here it is:", "The question is:", "So, settle this for "
                             "us:", "Here goes:"])
        return f"{rng.choice(CHATTY_BEFORE)} {middle} {question} {rng.choice(CHATTY_AFTER)}"
    return question


def length_class(text: str) -> str:
    """short (<= 12 words), medium (<= 40) or long: the same rule as the common-sense suite."""
    words = len(text.split())
    return "short" if words <= 12 else "medium" if words <= 40 else "long"


def broad_prompts(n: int, seed: int = 0) -> list[dict]:
    """`n` distinct prompts, kinds in turn, shapes drawn by `SHAPES`; each with gold answer,
    answer type, the instruction the model is given, kind, shape and length class."""
    rng = random.Random(seed)
    kinds, shapes = list(KINDS), list(SHAPES)
    rows: list[dict] = []
    seen: set[str] = set()
    while len(rows) < n:
        kind = kinds[len(rows) % len(kinds)]
        question, answer, answer_type = KINDS[kind](rng)
        shape = rng.choices(shapes, weights=list(SHAPES.values()))[0]
        choices, instruction = None, NUMBER_INSTRUCTION if answer_type == "number" \
            else TEXT_INSTRUCTION
        if shape == "options":
            prompt, answer = with_options(question, answer, answer_type, rng)
            answer_type, choices, instruction = "choice", "ABCD", CHOICE_INSTRUCTION
        else:
            prompt = shaped(question, shape, rng)
        if prompt in seen:
            continue
        seen.add(prompt)
        rows.append({"id": f"broad/{kind}/{len(rows)}", "prompt": prompt, "answer": answer,
                     "answer_type": answer_type, "choices": choices, "instruction": instruction,
                     "source": kind, "shape": shape, "length": length_class(prompt)})
    # runs of 64 sorted by length: a batch's prompts need little padding, a partial run is mixed
    return [r for i in range(0, n, 64)
            for r in sorted(rows[i:i + 64], key=lambda r: len(r["prompt"]))]
