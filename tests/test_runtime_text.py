"""The one text policy and turn rule (confroute.text) through the Python API, and the routing
decision (confroute.policy) the runtime, the CLI and the service share, for a pair and K models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from confroute.errors import ConfigError, InputError
from confroute.runtime import Router
from confroute.text import NoTextError, check_text, decode_utf8, prompt_text

from conftest import IMAGE, TOOL_TURN

CUT_EMOJI = "great phone \ud83d"  # an emoji cut in half by a UTF-16 (JavaScript) client


@pytest.mark.parametrize("prompt, message", [
    (CUT_EMOJI, r"prompt 0 is not valid Unicode text: character 12 is a lone surrogate U\+D83D"),
    ("\udc00 low half first", r"character 0 is a lone surrogate U\+DC00"),
    ("bad \udcff byte", r"U\+DCFF, the byte 0xff, which is not UTF-8"),  # argv surrogateescape
    ([{"role": "user", "content": CUT_EMOJI}], r"prompt 0: message 0 is not valid Unicode"),
    ([{"role": "user", "content": [{"type": "text", "text": CUT_EMOJI}]}],
     r"message 0 part 0 is not valid Unicode"),
    ([{"role": "user", "content": [{"type": "text", "text": None}]}],
     r"message 0 part 0: a text part's 'text' must be a string; found NoneType"),
    ([{"role": "user", "content": [{"type": "text", "text": 5}]}], r"found int"),
    ([{"role": "user", "content": [{"type": "text"}]}], r"found NoneType"),
    ([{"role": "user", "content": ["hi"]}], r"part 0 must be an object with a 'type'"),
    ([{"role": "user", "content": [{"text": "hi"}]}], r"part 0 must be an object with a 'type'"),
    ([{"role": "user", "content": None}], r"content must be a string or a list of parts"),
    ([{"role": 3, "content": "hi"}], r"'role' must be a string"),
    (["hi"], r"message 0 must be an object"),
    (b"hi", r"found bytes; decode bytes as UTF-8 first"),
    ([{"role": "assistant", "content": "hi"}], r"no message with role 'user'"),
])
def test_bad_text_is_refused_with_its_position(router: Router, prompt: object,
                                               message: str) -> None:
    for call in (router.score, router.texts, router.decide_batch, router.logits,
                 router.adequacy):
        with pytest.raises(InputError, match=message):
            call([prompt])  # type: ignore[list-item]


def test_the_position_names_the_prompt_in_a_batch(router: Router) -> None:
    with pytest.raises(InputError, match=r"^prompt 2 is not valid Unicode"):
        router.score(["fine", "also fine", CUT_EMOJI])
    with pytest.raises(InputError, match=r"^prompt 0 is not valid"):
        router.route(CUT_EMOJI)
    with pytest.raises(InputError):
        router.calibrate(["fine", CUT_EMOJI], 0.5)


def test_check_text_and_decode_utf8() -> None:
    assert check_text("emoji \U0001f600 whole", "x") == "emoji \U0001f600 whole"
    assert decode_utf8("café".encode(), "f") == "café"
    with pytest.raises(InputError, match=r"^f line 2 is not UTF-8: byte 3 is 0xe9; convert"):
        decode_utf8("café".encode("latin-1"), "f line 2")


def test_a_tool_calls_turn_without_content_is_not_scored(router: Router) -> None:
    assert router.texts([TOOL_TURN]) == ["And tomorrow?"]
    assert router.score([TOOL_TURN])[0] == pytest.approx(router.score(["And tomorrow?"])[0])
    null_content = [{"role": "assistant", "content": None}, {"role": "user", "content": "Hi"}]
    assert router.texts([null_content]) == ["Hi"]


def test_image_only_user_turns_are_skipped(router: Router) -> None:
    text_then_image = [{"role": "user", "content": "Describe the picture I will send."},
                       {"role": "user", "content": [IMAGE]}]
    assert router.texts([text_then_image]) == ["Describe the picture I will send."]
    mixed = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}]
    assert router.texts([mixed]) == ["What is this?"]
    assert prompt_text(text_then_image + [{"role": "user", "content": "Then?"}], "first") == \
        "Describe the picture I will send."
    assert prompt_text([*text_then_image, {"role": "user", "content": "Then?"}], "all") == \
        "Describe the picture I will send.\n\nThen?"
    with pytest.raises(NoTextError, match="hold no text"):
        router.score([[{"role": "user", "content": [IMAGE]}]])
    with pytest.raises(InputError, match="no message with role 'user' that holds text"):
        router.score([[{"role": "user", "content": "   "}]])  # empty is not an image


def test_a_pair_routes_a_score_equal_to_its_threshold_to_the_cloud(router: Router) -> None:
    score = float(router.score(["What is 2 plus 2?"])[0])
    assert router.decide("What is 2 plus 2?", threshold=score).route == "cloud"
    edge = router.decide("What is 2 plus 2?", threshold=float(np.nextafter(score, 2)))
    assert (edge.route, edge.model, edge.score) == ("edge", "edge", score)
    assert router.route("What is 2 plus 2?", threshold=score) == \
        router.decide("What is 2 plus 2?", threshold=score)  # the two-model name, one decision


@pytest.mark.parametrize("which", ["pair", "ladder"])
def test_the_two_model_view_is_the_k_model_decision(which: str, router: Router,
                                                    ladder_router: Router) -> None:
    routed = router if which == "pair" else ladder_router
    prompts = ["What is 2 plus 2?", "Prove the inequality for all n > 5 using induction."]
    probs, scores = routed.adequacy(prompts), routed.score(prompts)
    assert probs.shape == (2, len(routed.models)) and scores.shape == (2,)
    for decision, p, s in zip(routed.decide_batch(prompts), probs, scores, strict=True):
        assert decision.probabilities == dict(zip(routed.models, p.tolist(), strict=True))
        assert decision.route == ("edge" if decision.model_index == 0 else "cloud")
        assert decision.model == routed.models[decision.model_index]
        if which == "pair":  # the router's own score, not 1 - (1 - score)
            assert decision.score == s and list(decision.to_dict())[:3] == \
                ["score", "route", "threshold"]
            assert p.tolist() == [1.0 - s, 1.0]
        else:
            assert decision.score is None and "score" not in decision.to_dict()
            assert s == 1.0 - p[0]


@pytest.mark.parametrize("threshold", [math.nan, math.inf, -math.inf, -0.1, 1.1, "0.5", True,
                                       [0.5]])
def test_thresholds_that_are_not_numbers_in_range_are_refused(router: Router,
                                                              threshold: object) -> None:
    with pytest.raises(InputError, match="threshold must be a number in"):
        router.route("hi", threshold=threshold)  # type: ignore[arg-type]


@pytest.mark.parametrize("fraction", [math.nan, math.inf, -0.1, 1.5, "0.3", True])
def test_cloud_fractions_that_are_not_numbers_in_range_are_refused(router: Router,
                                                                   fraction: object) -> None:
    with pytest.raises(ConfigError, match=r"cloud_fraction must be a number in \[0, 1\]"):
        router.calibrate(["a", "b"], fraction)  # type: ignore[arg-type]
