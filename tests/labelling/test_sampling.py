"""Generation backends: the local transformers sampler and the OpenAI-compatible HTTP one.

The HTTP backend is tested against a real server on loopback (tests/serve/upstream.py, the one
upstream double) serving a real causal LM through `/v1/chat/completions`: a tiny random Llama
with a trained byte-level BPE tokenizer for the fast tests, the packaged SmolLM2-135M-Instruct
for the slow one. Retries, timeouts and errors of the client itself: tests/test_llm_client.py.
"""

from __future__ import annotations

import math

import pytest
from upstream import closed_port_url, echo_app, lm_answer, serve_in_thread

from confroute.errors import ConfigError, DataError
from confroute.labelling import backends
from confroute.labelling import sampling as s
from confroute.labelling.http import HttpBackend
from confroute.labelling.local import LocalBackend
from confroute.llm_client import EndpointConfig, LLMError


def lm_server(backend: LocalBackend, **failures):
    """An upstream serving `backend`'s model under the names "tiny" and the backend's own."""
    return echo_app("lm", models={"tiny", backend.name}, answer=lm_answer(backend), **failures)


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [{"n": 0}, {"temperature": 0.0}, {"top_p": 0.0}, {"top_k": -1},
                                 {"max_new_tokens": 0}, {"batch_size": 0}])
def test_sampling_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        s.SamplingConfig(**bad)


def test_make_backend_picks_the_backend_by_spec(tiny_lm):
    http = backends.make_backend("http://127.0.0.1:9/v1", "m", local={"device": "cuda"},
                          endpoint={"concurrency": 3, "api_key_env": None})
    assert isinstance(http, HttpBackend) and http.endpoint.concurrency == 3
    assert http.endpoint.api_key_env is None and http.name == "m"
    local = backends.make_backend(f"local:{tiny_lm}", local={"threads": 1},
                           endpoint={"concurrency": 3})
    assert isinstance(local, LocalBackend) and local.name == str(tiny_lm)
    assert backends.backend_name("http://h/v1", "m") == "http://h/v1#m"
    assert backends.backend_name(f"local:{tiny_lm}") == str(tiny_lm)


@pytest.mark.parametrize(("spec", "model", "error", "match"), [
    ("http://localhost:8000/v1", None, ConfigError, "name the model"),
    ("local:", None, DataError, "empty model name"),
    ("   ", None, DataError, "empty model name"),
])
def test_make_backend_rejects_bad_specs(spec, model, error, match):
    with pytest.raises(error, match=match):
        backends.make_backend(spec, model)


def test_make_backend_passes_endpoint_settings_through_their_checks():
    with pytest.raises(ConfigError, match="concurrency"):
        backends.make_backend("http://x/v1", "m", endpoint={"concurrency": 0})


def test_prompt_seed_is_stable_and_distinct():
    assert s.prompt_seed(0, "a") == s.prompt_seed(0, "a")
    assert s.prompt_seed(0, "a") != s.prompt_seed(0, "b") != s.prompt_seed(1, "a")


# --- local backend --------------------------------------------------------------------------


def test_local_backend_returns_n_samples_with_token_logprobs(tiny_backend):
    cfg = s.SamplingConfig(n=3, temperature=1.0, max_new_tokens=6, batch_size=2)
    prompts = ["What is 7 + 5?", "The capital of France?", "Give the final answer only."]
    gens = tiny_backend.generate(prompts, cfg, [1, 2, 3])
    assert len(gens) == 3
    for gen in gens:
        assert len(gen.samples) == 3 and gen.greedy is not None
        for sample in gen.samples + [gen.greedy]:
            assert sample.finish in ("stop", "length")
            assert sample.logprobs and all(lp <= 0 for lp in sample.logprobs)
            assert len(sample.logprobs) <= 6
            if sample.finish == "length":
                assert len(sample.logprobs) == 6


def test_local_samples_depend_on_the_seed_not_on_the_batch(tiny_backend):
    cfg = s.SamplingConfig(n=4, temperature=1.0, max_new_tokens=5, batch_size=3)
    alone = tiny_backend.generate(["What is 7 + 5?"], cfg, [42])[0]
    batched = tiny_backend.generate(["Paris", "What is 7 + 5?", "Give the final"], cfg,
                                    [1, 42, 2])[1]
    assert [x.text for x in alone.samples] == [x.text for x in batched.samples]
    other = tiny_backend.generate(["What is 7 + 5?"], cfg, [43])[0]
    assert [x.text for x in other.samples] != [x.text for x in alone.samples]


def test_greedy_row_matches_transformers_generate(tiny_backend):
    import torch

    cfg = s.SamplingConfig(n=1, temperature=1.0, max_new_tokens=6)
    prompt = "What is 7 + 5?"
    ours = tiny_backend.generate([prompt], cfg, [0])[0].greedy
    text = tiny_backend.chat_text(prompt, cfg)
    ids = tiny_backend.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = tiny_backend.model.generate(**ids, max_new_tokens=6, do_sample=False,
                                          pad_token_id=tiny_backend.tokenizer.pad_token_id)
    reference = tiny_backend.tokenizer.decode(out[0, ids["input_ids"].shape[1]:],
                                              skip_special_tokens=True).strip()
    assert ours.text == reference


def test_top_k_one_is_greedy(tiny_backend):
    cfg = s.SamplingConfig(n=3, temperature=1.0, top_k=1, max_new_tokens=5)
    gen = tiny_backend.generate(["What is 7 + 5?"], cfg, [5])[0]
    assert {x.text for x in gen.samples} == {gen.greedy.text}


def test_choice_logprobs_are_a_distribution_over_letters(tiny_backend):
    cfg = s.SamplingConfig(n=1, temperature=1.0, max_new_tokens=2)
    gen = tiny_backend.generate(["Which? A. x B. y"], cfg, [0], [["A", "B", "C", "D"]])[0]
    assert set(gen.choice_logprobs) == {"A", "B", "C", "D"}
    assert sum(math.exp(v) for v in gen.choice_logprobs.values()) <= 1.0 + 1e-6


def test_prompt_longer_than_the_context_is_a_clear_error(tiny_backend):
    with pytest.raises(DataError, match="context"):
        tiny_backend.generate(["7 + 5 " * 1500], s.SamplingConfig(n=1), [0])


def test_unknown_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="could not load causal LM"):
        LocalBackend(str(tmp_path / "nope"))


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> LocalBackend:
    """The packaged GGUF, dequantised once into a temporary cache (tests the GGUF path too)."""
    return LocalBackend("smollm2", cache_dir=tmp_path_factory.mktemp("cache"), threads=2)


@pytest.mark.slow
def test_packaged_smollm2_answers_arithmetic(smollm2):
    backend = smollm2
    cfg = s.SamplingConfig(n=3, temperature=0.5, max_new_tokens=12, answer_prefix="The answer is",
                           stop_at_newline=True)
    prompts = ["What is 2 + 2?\nGive the final answer only.",
               "Which of these is a mammal?\nA. shark\nB. dolphin\nC. trout\nD. eel\n"
               "Answer with the letter of the correct option."]
    gens = backend.generate(prompts, cfg, [0, 1], [None, list("ABCD")])
    assert all(len(g.samples) == 3 and g.greedy.text for g in gens)
    assert "4" in gens[0].greedy.text  # the model does know 2 + 2
    assert gens[1].choice_logprobs and max(gens[1].choice_logprobs.values()) > math.log(0.1)


# --- HTTP backend against a real server ----------------------------------------------------


def test_http_backend_samples_from_a_real_server(tiny_backend, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "secret")
    app = lm_server(tiny_backend, api_key="secret")
    with serve_in_thread(app) as url:
        backend = HttpBackend(EndpointConfig(f"{url}/v1", "tiny", api_key_env="TEST_KEY",
                                             concurrency=3))
        cfg = s.SamplingConfig(n=3, temperature=1.0, max_new_tokens=5, system="Be brief.")
        gens = backend.generate(["What is 7 + 5?", "Paris"], cfg, [1, 2])
    assert len(gens) == 2
    for gen in gens:
        assert len(gen.samples) == 3 and gen.greedy is not None
        assert all(x.logprobs and len(x.logprobs) <= 5 for x in gen.samples)
        assert all(lp <= 0 for x in gen.samples for lp in x.logprobs)
    assert len(app.state.seen) == 8 and app.state.load["max_in_flight"] <= 3
    bodies = [r["body"] for r in app.state.seen]
    assert {r["authorization"] for r in app.state.seen} == {"Bearer secret"}
    # prompt i: n samples at seeds[i] + k, the greedy answer at temperature 0 and seeds[i]
    assert sorted((b["temperature"], b["seed"]) for b in bodies) == sorted(
        [(1.0, 1), (1.0, 2), (1.0, 3), (0.0, 1), (1.0, 2), (1.0, 3), (1.0, 4), (0.0, 2)])
    assert all(b["messages"][0] == {"role": "system", "content": "Be brief."} and b["logprobs"]
               and b["max_tokens"] == 5 for b in bodies)
    # the greedy request (temperature 0) returns what the local greedy decode returns
    local = tiny_backend.generate(["What is 7 + 5?"],
                                  s.SamplingConfig(n=1, max_new_tokens=5, system="Be brief."),
                                  [0])[0].greedy
    assert gens[0].greedy.text == local.text
    # a sampled answer over HTTP is the local sample with the same seed
    again = tiny_backend.generate(["Paris"], s.SamplingConfig(
        n=1, temperature=1.0, top_k=0, max_new_tokens=5, greedy=False, system="Be brief."),
        [3])[0].samples[0]
    assert gens[1].samples[1].text == again.text


def test_http_backend_without_logprobs_and_usage(monkeypatch):
    """A server that gives no token log-probs: samples carry None (SE falls back to discrete),
    and `generated_tokens` counts the completion tokens the server reports."""
    app = echo_app("edge")
    with serve_in_thread(app) as url:
        backend = HttpBackend(EndpointConfig(f"{url}/v1", "m", api_key_env=None),
                              logprobs=False)
        gens = backend.generate(["two words"], s.SamplingConfig(n=2, greedy=False), [7])
    assert [x.text for x in gens[0].samples] == ["edge says: two words"] * 2
    assert all(x.logprobs is None and x.finish == "stop" for x in gens[0].samples)
    assert "logprobs" not in app.state.seen[0]["body"] and backend.generated_tokens == 8


def test_http_backend_retries_429_then_succeeds(tiny_backend):
    app = lm_server(tiny_backend, fail_status=429, fail_first=2, retry_after="0.01")
    with serve_in_thread(app) as url:
        backend = HttpBackend(EndpointConfig(f"{url}/v1", "tiny", concurrency=1,
                                             api_key_env=None))
        gens = backend.generate(["hi"], s.SamplingConfig(n=1, greedy=False, max_new_tokens=3),
                                [0])
    assert len(gens[0].samples) == 1 and gens[0].samples[0].logprobs
    assert len(app.state.seen) == 3


def test_http_backend_4xx_is_a_clear_error_without_retries(tiny_backend):
    app = lm_server(tiny_backend)
    with serve_in_thread(app) as url:
        backend = HttpBackend(EndpointConfig(f"{url}/v1", "no-such-model", api_key_env=None))
        with pytest.raises(LLMError, match="404.*no-such-model.*model name"):
            backend.generate(["hi"], s.SamplingConfig(n=1, greedy=False), [0])
    assert len(app.state.seen) == 1


def test_http_backend_unreachable_server_is_a_clear_error():
    backend = HttpBackend(EndpointConfig(closed_port_url(), "m", max_retries=1,
                                         api_key_env=None))
    with pytest.raises(LLMError, match="2 attempts.*is the server up"):
        backend.generate(["hi"], s.SamplingConfig(n=1, greedy=False), [0])


@pytest.mark.parametrize("malformed", ['{"choices": [{"index": 0, "message": {"content": 7}}]}',
                                       '{"choices": [{"index": 0, "message": {"content": "x"}, '
                                       '"logprobs": {"content": [{"logprob": "high"}]}}]}'])
def test_http_backend_malformed_answer_is_a_clear_error(malformed):
    with serve_in_thread(echo_app(malformed=malformed)) as url:
        backend = HttpBackend(EndpointConfig(f"{url}/v1", "m", api_key_env=None))
        with pytest.raises(LLMError, match="not text|malformed token log-probs"):
            backend.generate(["hi"], s.SamplingConfig(n=1, greedy=False), [0])


@pytest.mark.slow
def test_http_backend_against_smollm2_server(smollm2):
    with serve_in_thread(lm_server(smollm2)) as url:
        backend = HttpBackend(EndpointConfig(f"{url}/v1", "smollm2", api_key_env=None))
        gens = backend.generate(["What is 2 + 2? Give the final answer only."],
                                s.SamplingConfig(n=2, max_new_tokens=12), [0])
    assert "4" in gens[0].greedy.text
    assert all(x.logprobs for x in gens[0].samples)
