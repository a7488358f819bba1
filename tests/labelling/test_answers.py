"""Answer extraction: what a model's answer commits to (numbers, option letters, text), and its
correctness against gold. Each case is a form real models write (the issue-12 cases first)."""

from __future__ import annotations

import threading

import pytest

from confroute.errors import ConfigError, DataError
from confroute.labelling import answers
from confroute.labelling.answers import answers_match, extract_answer

PREFIX = "The answer is"


def number(text: str, prefix: str | None = None) -> str | None:
    return extract_answer(text, "number", prefix=prefix).value


def letter(text: str, choices: str = "ABCD") -> str | None:
    return extract_answer(text, "choice", choices).value


@pytest.mark.parametrize(("text", "expected"), [
    # issue 12: the committed answer, not the first number
    ("Tom had 3 boxes and bought 4 more, so now he has 7 boxes.", "7"),
    ("First 5 + 3 = 8 dollars. He then spends 2, so 6 are left. The answer is 6.", "6"),
    ("\u22125", "-5"), ("3/4", "0.75"), ("The answer is \\frac{1}{2}.", "0.5"),
    # markers: boxed (nested braces, last one), ####, Answer:, final answer
    ("We get \\boxed{2} first, then \\boxed{\\dfrac{3}{4}} dollars", "0.75"),
    ("The final answer is $\\boxed{-2}$.", "-2"), ("so 4 + 4 = 8\n#### 8", "8"),
    ("Reasoning: 2 + 2 = 4.\nAnswer: 4", "4"), ("The answer is 5. Check: 5 - 1 = 4.", "5"),
    ("The answer is 7 - 2 = 5 apples.", "5"), ("The answer is 29 * 7, which equals 203.", "203"),
    ("The answer is eight.", "8"), ("The answer is \\sqrt{4}", "2"),
    # signs, separators, currency, percentages, units, decimals
    ("It is -3 degrees.", "-3"), ("+4", "4"), ("The answer is 1,234 apples", "1234"),
    ("It costs $1,250.50 in total.", "1250.5"), ("\u20ac4.50", "4.5"), ("\u00a37", "7"),
    ("The answer is 45%.", "45"), ("The answer is 12 cm.", "12"), ("12.0", "12"),
    ("The answer is .5", "0.5"), ("We get $3 \\times 4 = 12$.", "12"),
    ("The answer is $3 \\times 4 = 12$.", "12"),
    # expressions: operands are never the answer; the result after = is
    ("10 + 38 = 58.", "58"), ("3 x 4 = 12 and 12 = 12.0", "12"), ("29 * 7.", None),
    ("568, which is 568 - 20 =", "568"), ("He is 5-year-old and has 3 apples", "3"),
    ("The answer is 10 * (5/10) = 20.", "20"),
    # no answer
    ("I don't know", None), ("", None), ("The answer is unclear.", None),
    ("\\boxed{12", "12"),  # an unclosed box is not committed; the last number is read
])
def test_numbers_read_the_committed_value(text, expected):
    assert number(text) == expected


@pytest.mark.parametrize(("sample", "expected"), [
    # SmolLM2 continues "The answer is": the value it states first is its answer (the data:
    # 0.9 of its samples restate a step after it), an expression's result when it writes one
    ("4. Mike now has 8 - 4 = 2 orange marbles", "4"), ("45 x 23 = 910 pounds,", "910"),
    ("29 * 7, which equals 196.", "196"), ("1.5 units (1.5 servings or 1 slice).", "1.5"),
    ("104, which is the final answer.", "104"), ("2. To calculate 3 + 4", "2"),
    ("5. The answer is 5.", "5"), (": 12", "12"), ('"11"', "11"), ("29 * 7.", None),
])
def test_answers_that_continue_a_prefix_read_with_it(sample, expected):
    assert number(sample, PREFIX) == expected


def test_a_made_up_next_turn_after_the_answer_is_ignored():
    text = "5 + 1 = 6. The answer is 6.\n\nQuestion: What is 2 + 2?\nAnswer: The answer is 4."
    assert number(text) == "6"
    assert letter("The answer is (E).\n\n\nAnswer: The answer is (J).", "ABCDEFGHIJ") == "E"
    assert letter("The answer is (D).\n\n<|assistant|> The answer is (A).") == "D"


@pytest.mark.parametrize(("text", "expected"), [
    # issue 12
    ("a", "A"), ("**B**", "B"), ("The correct answer is (c).", "C"), ("Answer: D", "D"),
    ("I think it's C because the others do not fit.", "C"),
    ("A and B are wrong, so the answer is C.", "C"),
    # leading letter (short answers), markdown, brackets, "option X"
    ("B", "B"), ("B. dolphin", "B"), ("(C) trout", "C"), (": D. eel.", "D"), ("[b]", "B"),
    ("__A__", "A"), ("The correct answer is A", "A"), ("I choose option b.", "B"),
    ("The best choice is: D", "D"), ("The answer is option C.", "C"),
    ("The answer would be **(B)**.", "B"), ("A good answer is hard. So B.", "B"),
    # self-correction: the last commitment wins
    ("The answer is (A) is not correct. The answer is (C).", "C"),
    # not an answer
    ("Both are wrong", None), ("E. none", None), ("Dolphins are mammals", None),
    ("The answer is a bit unclear", None), ("The answer is (C) or (D), depending.", None),
    ("The answer is (A), (B), and (C).", None), ("The answer is (I cannot say).", None),
    ("It could be (B) or (D).", None), ("Option D is incorrect because it is slow.", None),
    ("Company C covers 20% of the loss", None), ("We get A = 4 and B = 6", None),
])
def test_option_letters_in_every_common_form(text, expected):
    assert letter(text) == expected


def test_any_option_set_and_letters_outside_it():
    ten = "ABCDEFGHIJ"
    assert letter("The answer is (J).", ten) == "J"
    assert letter("The answer is (H).", "ABCD") is None  # a 4-option question has no H
    assert letter("Answer: i", ten) == "I"
    assert letter("I think so. The answer is (I).", ten) == "I"
    assert letter("I think it is G.", ten) == "G"


def test_a_long_chain_of_thought_that_never_commits_has_no_letter():
    text = ("(a) First compute the mass of A. Company B pays 20%. Option C is wrong because "
            "the flow is turbulent, and the pressure drop is ΔP = 3 kPa. " * 3).strip()
    assert letter(text, "ABCDEFGHIJ") is None


def test_text_answers_strip_markers_and_reduce_yes_no():
    assert answers.normalise_text("  The Eiffel   Tower! ") == "eiffel tower"
    assert extract_answer("An apple.", "text").value == "apple"
    assert extract_answer("...", "text").value is None
    assert extract_answer("No, 47 is less than 52.", "text").value == "no"
    assert extract_answer(" yes.", "text", prefix=PREFIX).value == "yes"
    assert extract_answer("No one knows", "text").value == "no one knows"
    assert extract_answer("I think so. The answer is Paris.", "text").value == "paris"


def test_correctness_against_gold():
    assert answers_match("72", "72", "number") is True
    assert answers_match("72", "72.0", "number") is True
    assert answers_match("72", "#### 72", "number") is True
    assert answers_match("1234", "1,234", "number") is True
    assert answers_match("0.5", "\\frac{1}{2}", "number") is True
    assert answers_match("-5", "\u22125", "number") is True
    assert answers_match("71", "72", "number") is False
    assert answers_match(None, "72", "number") is False
    assert answers_match("72", None, "number") is None
    assert answers_match("72", "seventy-two", "number") is None  # gold that does not parse
    assert answers_match("B", "b", "choice") is True
    assert answers_match("paris", "Paris.", "text") is True
    assert answers_match("yes", "Yes, it is.", "text") is True


def test_bad_input_is_refused_with_a_clear_error():
    with pytest.raises(ConfigError, match="answer_type"):
        extract_answer("1", "date")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="must be text"):
        extract_answer(b"12", "number")  # type: ignore[arg-type]


def test_huge_and_odd_answers_stay_bounded():
    assert number("7 " * 20000 + "so the answer is 9.") == "9"
    assert letter("\x00\ufffd" * 1000) is None
    assert number("1" * 400) == answers.canonical_number(float("1" * 400))


def test_math_verify_runs_outside_the_main_thread():
    out: list[str | None] = []
    worker = threading.Thread(target=lambda: out.append(number("The answer is \\frac{3}{4}.")))
    worker.start()
    worker.join()
    assert out == ["0.75"]


def test_the_label_pipeline_reads_samples_with_the_stores_answer_prefix(tmp_path):
    from confroute.labelling.pipeline import MeasureConfig, evidence_table
    from confroute.labelling.store import JsonlStore

    def sample(text: str) -> dict:
        return {"text": text, "logprobs": [-0.1, -0.2], "finish": "stop"}

    row = {"id": "q1", "prompt": "Mike has 8 marbles and gives 4 away. How many are left?",
           "answer": "4", "answer_type": "number"}
    texts = ["4. Mike now has 8 - 4 = 2 marbles", "4.", "2."]
    frames = {}
    for prefix in (PREFIX, None):
        store = JsonlStore(tmp_path / f"{prefix}.jsonl",
                           {"role": "edge", "sampling": {"answer_prefix": prefix}})
        store.add([{"key": "edge:q1", "id": "q1", "samples": [sample(t) for t in texts],
                    "greedy": sample(texts[0])}])
        frames[prefix] = evidence_table([row], {"edge": store}, MeasureConfig()).iloc[0]
    assert list(frames[PREFIX]["answers_edge"]) == ["4", "4", "2"]
    assert frames[PREFIX]["correct_edge"] == 1.0
    assert list(frames[None]["answers_edge"]) == ["2", "4", "2"]  # read alone: the last value
    assert frames[None]["correct_edge"] == 0.0
