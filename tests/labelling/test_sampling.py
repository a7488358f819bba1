"""Generation backends: the local transformers sampler and the OpenAI-compatible HTTP client.

The HTTP backend is tested against a real server on loopback: a starlette app serving a real
causal LM through `/v1/chat/completions` (a tiny random Llama with a trained byte-level BPE
tokenizer for the fast tests, the packaged SmolLM2-135M-Instruct for the slow one).
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from pathlib import Path

import pytest

from confroute.errors import ConfigError
from confroute.labelling import sampling as s

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                 "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                 "{% endif %}")
CORPUS = ["What is 7 + 5? The answer is 12.", "Which of these is a mammal? A. shark B. dolphin",
          "The capital of France is Paris.", "Give the final answer only.", "0123456789 + - * ="]


def make_tiny_lm(folder: Path) -> Path:
    """A real (random-weight) Llama causal LM with a trained byte-level BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(CORPUS * 20, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", bos_token="<|im_start|>")
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tiny_backend(tiny_lm: Path) -> s.LocalBackend:
    return s.LocalBackend(str(tiny_lm), threads=1)


# --- a real OpenAI-compatible server on loopback -------------------------------------------


def openai_app(backend: s.LocalBackend, fail_first: int = 0, fail_status: int = 429):
    """/v1/chat/completions serving `backend`'s model (n=1; temperature 0 = greedy).

    `fail_first` answers the first requests with `fail_status`, to exercise client retries.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    state = {"failures": fail_first, "requests": 0}
    lock = asyncio.Lock()

    async def chat(request: Request) -> JSONResponse:
        state["requests"] += 1
        if state["failures"] > 0:
            state["failures"] -= 1
            return JSONResponse({"error": {"message": "slow down"}}, status_code=fail_status,
                                headers={"Retry-After": "0"})
        body = await request.json()
        if body.get("model") != "tiny" and body.get("model") != backend.name:
            return JSONResponse({"error": {"message": f"model {body.get('model')} not found"}},
                                status_code=404)
        messages = body["messages"]
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        prompt = messages[-1]["content"]
        temperature = float(body.get("temperature", 1.0))
        cfg = s.SamplingConfig(n=1, temperature=max(temperature, 1e-3),
                               top_p=float(body.get("top_p", 1.0)), top_k=0,
                               max_new_tokens=int(body.get("max_tokens", 16)),
                               greedy=temperature == 0, system=system)
        async with lock:  # one generation at a time: the model is shared
            gen = await asyncio.to_thread(backend.generate, [prompt], cfg,
                                          [int(body.get("seed", 0))])
        sample = gen[0].greedy if temperature == 0 else gen[0].samples[0]
        choice = {"index": 0, "message": {"role": "assistant", "content": sample.text},
                  "finish_reason": sample.finish}
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [{"token": "", "logprob": lp}
                                              for lp in sample.logprobs or []]}
        return JSONResponse({"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [choice]})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.counters = state
    return app


class LoopbackServer:
    """uvicorn on 127.0.0.1 with an ephemeral port, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [{"n": 0}, {"temperature": 0.0}, {"top_p": 0.0}, {"top_k": -1},
                                 {"max_new_tokens": 0}, {"batch_size": 0}])
def test_sampling_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        s.SamplingConfig(**bad)


def test_http_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="http"):
        s.HttpConfig(base_url="localhost:8000", model="m")
    with pytest.raises(ConfigError):
        s.HttpConfig(base_url="http://x/v1", model="m", concurrency=0)


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
    from confroute.errors import DataError

    with pytest.raises(DataError, match="context"):
        tiny_backend.generate(["7 + 5 " * 1500], s.SamplingConfig(n=1), [0])


def test_unknown_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="could not load causal LM"):
        s.LocalBackend(str(tmp_path / "nope"))


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> s.LocalBackend:
    """The packaged GGUF, dequantised once into a temporary cache (tests the GGUF path too)."""
    return s.LocalBackend("smollm2", cache_dir=tmp_path_factory.mktemp("cache"), threads=2)


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
    with LoopbackServer(openai_app(tiny_backend)) as server:
        backend = s.HttpBackend(s.HttpConfig(base_url=server.url, model="tiny",
                                             api_key_env="TEST_KEY", concurrency=3))
        cfg = s.SamplingConfig(n=3, temperature=1.0, max_new_tokens=5)
        gens = backend.generate(["What is 7 + 5?", "Paris"], cfg, [1, 2])
    assert len(gens) == 2
    for gen in gens:
        assert len(gen.samples) == 3 and gen.greedy is not None
        assert all(x.logprobs and len(x.logprobs) <= 5 for x in gen.samples)
    # the greedy request (temperature 0) returns what the local greedy decode returns
    local = tiny_backend.generate(["What is 7 + 5?"], s.SamplingConfig(n=1, max_new_tokens=5),
                                  [0])[0].greedy
    assert gens[0].greedy.text == local.text


def test_http_backend_retries_429_then_succeeds(tiny_backend):
    app = openai_app(tiny_backend, fail_first=2, fail_status=429)
    with LoopbackServer(app) as server:
        backend = s.HttpBackend(s.HttpConfig(base_url=server.url, model="tiny", concurrency=1,
                                             backoff_s=0.01, api_key_env=None))
        gens = backend.generate(["hi"], s.SamplingConfig(n=1, greedy=False, max_new_tokens=3),
                                [0])
    assert len(gens[0].samples) == 1
    assert app.state.counters["requests"] == 3


def test_http_backend_gives_up_after_retries_on_5xx(tiny_backend):
    app = openai_app(tiny_backend, fail_first=10, fail_status=503)
    with LoopbackServer(app) as server:
        backend = s.HttpBackend(s.HttpConfig(base_url=server.url, model="tiny", max_retries=2,
                                             backoff_s=0.01, api_key_env=None))
        with pytest.raises(s.BackendError, match="503.*after 3 attempts"):
            backend.generate(["hi"], s.SamplingConfig(n=1, greedy=False), [0])
    assert app.state.counters["requests"] == 3


def test_http_backend_4xx_is_a_clear_error_without_retries(tiny_backend):
    app = openai_app(tiny_backend)
    with LoopbackServer(app) as server:
        backend = s.HttpBackend(s.HttpConfig(base_url=server.url, model="no-such-model",
                                             backoff_s=0.01, api_key_env=None))
        with pytest.raises(s.BackendError, match="404.*model name"):
            backend.generate(["hi"], s.SamplingConfig(n=1, greedy=False), [0])
    assert app.state.counters["requests"] == 1


def test_http_backend_unreachable_server_is_a_clear_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    backend = s.HttpBackend(s.HttpConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m",
                                         max_retries=1, backoff_s=0.01, api_key_env=None))
    with pytest.raises(s.BackendError, match="is the server up"):
        backend.generate(["hi"], s.SamplingConfig(n=1, greedy=False), [0])


@pytest.mark.slow
def test_http_backend_against_smollm2_server(smollm2):
    with LoopbackServer(openai_app(smollm2)) as server:
        backend = s.HttpBackend(s.HttpConfig(base_url=server.url, model="smollm2",
                                             api_key_env=None))
        gens = backend.generate(["What is 2 + 2? Give the final answer only."],
                                s.SamplingConfig(n=2, max_new_tokens=12), [0])
    assert "4" in gens[0].greedy.text
    assert all(x.logprobs for x in gens[0].samples)
