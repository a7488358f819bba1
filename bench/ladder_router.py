"""The router bench/ladders.py measures: one frozen encoder, one logistic head per model.

- Features: frozen all-MiniLM-L6-v2 mean-pooled sentence embeddings (computed once for every
  MMLU-Pro question, cached under bench/.cache, standardised with training statistics), or TF-IDF
  of word 1-2-grams fitted on the training questions only (scikit-learn).
- Heads: per model, scikit-learn logistic regression predicting P(model correct | question), its
  inverse regularisation C chosen by 3-fold CV on the training rows (LogisticRegressionCV).
- IRT router: the same shared head trained on every model in the outcome file (in-distribution
  abilities), P(model m correct) = sigmoid(w . x + b_m).
- Transfer head (a model-identity feature): one logistic regression over (question, model) rows
  of the training models, logit = w . x + b_model. This is the Rasch (one-parameter IRT) form,
  P(correct) = sigmoid(ability_model - difficulty(question)) (Lord 1980, "Applications of item
  response theory"), with the difficulty read from the text. A model never trained on:
  - given only its name: the ability of the training model with the most similar name
    (difflib ratio); the question ranking is -w . x whatever the ability.
  - given a few hundred labels: a logistic regression of its correctness on [w . x, category
    one-hot] fitted on those labelled questions (a 2PL slope, intercept and per-category
    offsets on top of the shared difficulty).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from confroute.errors import ConfigError

CS = (0.01, 0.1, 1.0, 10.0)


class Features:
    """Question features by id: `minilm` (cached embeddings) or `tfidf` (fitted on `train_ids`)."""

    def __init__(self, kind: str, ids: Sequence[str], texts: Sequence[str],
                 train_ids: Sequence[str], cache: Path) -> None:
        self.kind = kind
        self.row = {i: r for r, i in enumerate(ids)}
        train_rows = [self.row[i] for i in train_ids]
        if kind == "minilm":
            from confroute.evaluation.embeddings import embed

            emb = embed(list(texts), cache_dir=cache / "embeddings")
            mean, sd = emb[train_rows].mean(0), emb[train_rows].std(0) + 1e-6
            self.matrix = (emb - mean) / sd
        elif kind == "tfidf":
            from sklearn.feature_extraction.text import TfidfVectorizer

            vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                         max_features=50000)
            vectorizer.fit([texts[r] for r in train_rows])
            self.matrix = vectorizer.transform(texts).tocsr()
        else:
            raise ConfigError(f"unknown features '{kind}'; use minilm or tfidf")

    def __call__(self, ids: Sequence[str]):
        return self.matrix[[self.row[i] for i in ids]]


def head(x, y: np.ndarray, seed: int = 0):
    """A logistic head P(correct | x) with C chosen by 3-fold CV (log loss) on (x, y); liblinear
    for sparse TF-IDF rows (lbfgs converges slowly there), lbfgs for dense embeddings."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegressionCV

    solver = "liblinear" if sp.issparse(x) else "lbfgs"
    return LogisticRegressionCV(Cs=list(CS), cv=3, scoring="neg_log_loss", max_iter=2000,
                                solver=solver, random_state=seed).fit(x, y)


def proba(model, x) -> np.ndarray:
    return model.predict_proba(x)[:, 1]


class SharedHead:
    """logit P(model m correct on x) = w . x + b_m, fitted on stacked (question, model) rows."""

    def __init__(self, c: float = 1.0) -> None:
        self.c = c

    def fit(self, x, outcomes: np.ndarray, models: Sequence[str]) -> SharedHead:
        """`x` [n, d] features, `outcomes` [n, M] 0/1 (NaN = unknown), `models` [M] names."""
        import scipy.sparse as sp
        from sklearn.linear_model import LogisticRegression

        self.models = list(models)
        rows, cols = np.nonzero(np.isfinite(outcomes))
        onehot = sp.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), cols)),
                               shape=(len(rows), len(self.models)))
        stacked = sp.hstack([sp.csr_matrix(x[rows]) if not sp.issparse(x) else x[rows],
                             onehot]).tocsr()
        solver = "liblinear" if sp.issparse(x) else "lbfgs"
        fit = LogisticRegression(C=self.c, max_iter=3000, fit_intercept=False,
                                 solver=solver).fit(stacked, outcomes[rows, cols])
        d = x.shape[1]
        self.w, self.ability = fit.coef_[0][:d], dict(zip(self.models, fit.coef_[0][d:],
                                                          strict=True))
        return self

    def logit(self, x) -> np.ndarray:
        """The shared term w . x [n] (minus the question's difficulty)."""
        return np.asarray(x @ self.w).ravel()

    def proba(self, x, name: str) -> np.ndarray:
        """P(correct) [n] of a model the head was trained on."""
        return 1 / (1 + np.exp(-(self.logit(x) + self.ability[name])))

    def zero_shot(self, x, name: str) -> np.ndarray:
        """P(correct) for a model known only by its name: the most similar name's ability."""
        nearest = max(self.models, key=lambda m: difflib.SequenceMatcher(
            None, m.lower(), name.lower()).ratio())
        return 1 / (1 + np.exp(-(self.logit(x) + self.ability[nearest])))

    def few_shot(self, x_labelled, y: np.ndarray, cat_labelled: np.ndarray, x,
                 categories: np.ndarray) -> np.ndarray:
        """P(correct) after fitting [w . x, category one-hot] on a few labelled questions."""
        from sklearn.linear_model import LogisticRegression

        names = np.unique(categories)

        def design(xx, cats):
            return np.c_[self.logit(xx), (cats[:, None] == names[None, :]).astype(float)]

        fit = LogisticRegression(C=1.0, max_iter=2000).fit(design(x_labelled, cat_labelled), y)
        return fit.predict_proba(design(x, categories))[:, 1]
