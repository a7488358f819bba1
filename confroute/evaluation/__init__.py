"""Routing quality vs cost on real per-prompt outcomes.

- `groundtruth`: edge and cloud outcomes per prompt (RouteLLM's MT-Bench, GSM8K, MMLU files, or a
  labelled dataset with `rating_edge` / `rating_cloud`).
- `metrics`: the threshold sweep, PGR, APGR, CPT(x), bootstrap CIs (conventions in its docstring).
- `costs`: USD per prompt from token counts and per-model prices.
- `embeddings`, `baselines`: the paper's / RouteLLM's router families over frozen embeddings.
- `protocols`: k-fold cross-validation (out-of-fold scores) and cross-benchmark transfer.
- `finetuned`: the fine-tuned encoder router trained inside those protocols.
- `report`: JSON report, markdown table and PNG plot; `judge`: the LLM-as-a-judge comparison.
"""
