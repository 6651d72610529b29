"""The offline sentiment model: TF-IDF + logistic regression trained by the project on labelled financial sentences
(Financial PhraseBank), so news and posts are scored without downloading a model at run time.

The model is one scikit-learn Pipeline (clean text -> word 1-2 gram and character 3-5 gram TF-IDF -> multinomial
logistic regression), so MLflow's sklearn flavour logs and loads it whole and the cleaning of tweets (URLs,
@mentions, "RT", cashtags) is the same in training and scoring. A text's score is P(positive) - P(negative).

Choices measured by 5-fold CV on the training part (seed 0), never on the hold-out: character n-grams add 1.5 points
of accuracy (0.782 +- 0.010 vs 0.767 +- 0.016 with word n-grams only), C=4 beat 1 and 10; class_weight (None or
"balanced") is picked by CV at training time, among `class_weights`. Hold-out accuracy (seed 0): 0.785, always-neutral
0.594.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer

LABELS = ("negative", "neutral", "positive")
NEUTRAL = "neutral"
CV_FOLDS = 5
CASHTAG_TOKEN = "tickersymbol"  # a word the labelled sentences never use: it carries no weight either way

_URL = r"(?:https?://|www\.)\S*"  # truncated tweets end in "http://…"
_MENTION = r"(?<!\w)@\w+:?"
_RETWEET = r"(?<!\w)RT(?!\w)"
_CASHTAG = r"(?<!\w)\$[A-Za-z][A-Za-z0-9.\-]{0,9}(?![A-Za-z0-9])"


class PhraseBankFormatError(ValueError):
    """The labelled sentences file is not `label,news` rows with a known label and a text."""


def load_phrasebank(path: str | Path, encoding: str = "latin-1") -> pd.DataFrame:
    """The labelled sentences of a Financial PhraseBank CSV (header `label,news`) as DataFrame[label, text].

    A training set is curated: a row with an unknown label, no text or the wrong number of fields is an error naming
    its line (all such lines, up to 20, in one message), not a row silently dropped."""
    path = Path(path)
    labels, texts, problems = [], [], []
    with path.open(newline="", encoding=encoding) as handle:
        reader = csv.reader(handle)
        header = [cell.strip().lower() for cell in next(reader, [])]
        if header != ["label", "news"]:
            raise PhraseBankFormatError(f"{path}: line 1: expected the header 'label,news', got {','.join(header)!r}")
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            if len(row) != 2:
                problems.append(f"line {line}: {len(row)} fields, expected 2 (label,news)")
                continue
            label, text = row[0].strip().lower(), row[1].strip()
            if label not in LABELS:
                problems.append(f"line {line}: unknown label {row[0]!r} (expected one of {', '.join(LABELS)})")
            elif not text:
                problems.append(f"line {line}: no text")
            else:
                labels.append(label)
                texts.append(text)
    if problems:
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise PhraseBankFormatError(f"{path}: {len(problems)} malformed row(s): {shown}")
    if not labels:
        raise PhraseBankFormatError(f"{path}: no labelled sentences")
    return pd.DataFrame({"label": labels, "text": texts})


def clean_texts(texts: Iterable) -> np.ndarray:
    """Texts as the model reads them: HTML entities decoded, URLs, @mentions and "RT" removed, cashtags ($AAPL)
    turned into one neutral token, whitespace collapsed. None/NaN become ""."""
    series = pd.Series(list(texts) if not isinstance(texts, pd.Series) else texts.to_numpy(), dtype=object)
    series = series.map(lambda t: html.unescape(t) if isinstance(t, str) else "")
    cleaned = (
        series.str.replace(_URL, " ", regex=True)
        .str.replace(_MENTION, " ", regex=True)
        .str.replace(_RETWEET, " ", regex=True)
        .str.replace(_CASHTAG, f" {CASHTAG_TOKEN} ", regex=True)
        .str.replace(r"\s+", " ", regex=True)
        .str.strip()
    )
    return cleaned.to_numpy(dtype=object)


def build_pipeline(seed: int = 0, class_weight: str | None = None, char_ngrams: bool = True) -> Pipeline:
    """The untrained pipeline: clean -> TF-IDF (word 1-2 grams, sublinear tf; char 3-5 grams) -> logistic regression."""
    vectorizers = [("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32))]
    if char_ngrams:
        vectorizers.append(
            (
                "char",
                TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, dtype=np.float32),
            )
        )
    return Pipeline(
        [
            ("clean", FunctionTransformer(clean_texts)),
            ("tfidf", FeatureUnion(vectorizers)),
            (
                "classify",
                LogisticRegression(
                    C=4.0, class_weight=class_weight, solver="newton-cg", max_iter=1000, random_state=seed
                ),
            ),
        ]
    )


@dataclass
class SentimentModel:
    """A fitted pipeline (`clean` -> `tfidf` -> `classify`) that labels texts and scores them in [-1, 1]."""

    pipeline: Pipeline

    def _cleaned(self, texts: Iterable) -> tuple[np.ndarray, np.ndarray]:
        cleaned = self.pipeline[:1].transform(texts)
        return cleaned, pd.Series(cleaned, dtype=object).str.contains(r"[^\W_]", regex=True).to_numpy(dtype=bool)

    def predict(self, texts: Iterable) -> np.ndarray:
        """The most likely label of each text; None where the text holds no word once cleaned."""
        cleaned, present = self._cleaned(texts)
        out = np.full(len(cleaned), None, dtype=object)
        if present.any():
            out[present] = self.pipeline[1:].predict(cleaned[present])
        return out

    def score(self, texts: Iterable) -> np.ndarray:
        """P(positive) - P(negative) of each text, in [-1, 1]; NaN where the text holds no word once cleaned (a
        bare link or mention says nothing)."""
        cleaned, present = self._cleaned(texts)
        out = np.full(len(cleaned), np.nan)
        if present.any():
            proba = self.pipeline[1:].predict_proba(cleaned[present])
            classes = list(self.pipeline[-1].classes_)
            out[present] = proba[:, classes.index("positive")] - proba[:, classes.index("negative")]
        return out


@dataclass
class SentimentReport:
    """A trained model and how well it does: CV on the training part, accuracy on the held-out sentences."""

    model: SentimentModel
    holdout_accuracy: float
    cv_accuracy: float  # mean 5-fold accuracy of the chosen configuration on the training part
    cv_accuracy_std: float
    neutral_baseline_accuracy: float  # always answering "neutral", on the hold-out
    n_train: int
    n_holdout: int
    labels: tuple[str, ...]
    confusion: pd.DataFrame  # rows: actual label, columns: predicted label, on the hold-out
    class_weight: str | None = None  # the one CV chose
    cv_by_class_weight: dict[str, float] = field(default_factory=dict)
    duplicates_dropped: int = 0  # repeated sentences (and sentences labelled two ways) left out before the split
    holdout_sentences: pd.DataFrame | None = None  # DataFrame[label, text] of the hold-out, for inspection


def _deduplicate(sentences: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per text, so no sentence is both trained on and held out; a text labelled two ways is left out."""
    text = sentences["text"].astype(str).str.strip()
    labels_per_text = sentences.groupby(text)["label"].transform("nunique")
    kept = sentences[(labels_per_text == 1).to_numpy()].assign(text=text).drop_duplicates("text")
    return kept.reset_index(drop=True), len(sentences) - len(kept)


def train_sentiment(
    sentences: pd.DataFrame,
    seed: int = 0,
    holdout: float = 0.2,
    class_weights: Sequence[str | None] = (None, "balanced"),
    char_ngrams: bool = True,
) -> SentimentReport:
    """Train on DataFrame[label, text]: a stratified hold-out split, 5-fold stratified CV on the rest picks the class
    weight, the chosen pipeline is fitted on the whole training part and measured on the hold-out."""
    missing = {"label", "text"} - set(sentences.columns)
    if missing:
        raise ValueError(f"sentences need the columns label and text; missing {sorted(missing)}")
    unknown = sorted(set(sentences["label"]) - set(LABELS))
    if unknown:
        raise ValueError(f"unknown labels {unknown}: expected {list(LABELS)}")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout}")
    data, dropped = _deduplicate(sentences)
    train, held = train_test_split(data, test_size=holdout, stratify=data["label"], random_state=seed)
    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed)
    scores = {
        weight: cross_val_score(build_pipeline(seed, weight, char_ngrams), train["text"], train["label"], cv=folds)
        for weight in class_weights
    }
    chosen = max(scores, key=lambda weight: scores[weight].mean())  # ties: the first listed
    pipeline = build_pipeline(seed, chosen, char_ngrams).fit(train["text"], train["label"])
    predicted = pipeline.predict(held["text"])
    labels = tuple(label for label in LABELS if label in set(data["label"]))
    confusion = pd.DataFrame(
        confusion_matrix(held["label"], predicted, labels=list(labels)),
        index=pd.Index(labels, name="actual"),
        columns=pd.Index(labels, name="predicted"),
    )
    return SentimentReport(
        model=SentimentModel(pipeline),
        holdout_accuracy=float(accuracy_score(held["label"], predicted)),
        cv_accuracy=float(scores[chosen].mean()),
        cv_accuracy_std=float(scores[chosen].std()),
        neutral_baseline_accuracy=float((held["label"] == NEUTRAL).mean()),
        n_train=len(train),
        n_holdout=len(held),
        labels=labels,
        confusion=confusion,
        class_weight=chosen,
        cv_by_class_weight={str(weight): float(s.mean()) for weight, s in scores.items()},
        duplicates_dropped=dropped,
        holdout_sentences=held[["label", "text"]].reset_index(drop=True),
    )
