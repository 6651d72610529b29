"""The offline sentiment model, trained and measured on the real Financial PhraseBank."""

import pickle

import numpy as np
import pandas as pd
import pytest

from stockpred_core.models.sentiment import (
    CASHTAG_TOKEN,
    LABELS,
    PhraseBankFormatError,
    SentimentModel,
    clean_texts,
    load_phrasebank,
    train_sentiment,
)


@pytest.fixture(scope="module")
def sentences(shared_data) -> pd.DataFrame:
    return load_phrasebank(shared_data / "alternative" / "sentiment_training" / "financial_phrasebank_all_data.csv")


@pytest.fixture(scope="module")
def report(sentences):
    return train_sentiment(sentences, seed=0)


def test_the_real_file_loads_whole(sentences):
    assert len(sentences) == 4846 and list(sentences.columns) == ["label", "text"]
    assert sentences["label"].value_counts().to_dict() == {"neutral": 2879, "positive": 1363, "negative": 604}
    assert sentences["text"].str.len().min() > 0


def test_holdout_accuracy_beats_always_neutral(report, sentences):
    assert report.holdout_accuracy > report.neutral_baseline_accuracy + 0.10
    assert report.holdout_accuracy > 0.70 and report.cv_accuracy > 0.70 and 0 < report.cv_accuracy_std < 0.05
    assert report.neutral_baseline_accuracy == pytest.approx(0.594, abs=0.02)
    assert report.n_train + report.n_holdout + report.duplicates_dropped == len(sentences)
    assert report.n_holdout == pytest.approx(0.2 * (len(sentences) - report.duplicates_dropped), abs=1)
    assert report.labels == LABELS and report.class_weight in (None, "balanced")
    assert set(report.cv_by_class_weight) == {"None", "balanced"}
    assert report.cv_accuracy == max(report.cv_by_class_weight.values())
    held = report.holdout_sentences
    predicted = report.model.predict(held["text"])
    assert report.confusion.to_numpy().sum() == report.n_holdout == len(held)
    assert np.trace(report.confusion.to_numpy()) / report.n_holdout == pytest.approx(report.holdout_accuracy)
    assert (predicted == held["label"].to_numpy()).mean() == pytest.approx(report.holdout_accuracy)


def test_the_holdout_was_never_trained_on(report, sentences):
    held = set(report.holdout_sentences["text"])
    assert len(held) == report.n_holdout
    ambiguous = sentences.groupby("text")["label"].nunique().gt(1).sum()  # texts labelled two ways: left out
    # every distinct text is on one side only (or left out): none both trained on and held out
    assert len(set(sentences["text"])) == report.n_train + report.n_holdout + ambiguous


def test_clear_holdout_sentences_get_the_right_sign(report):
    held = report.holdout_sentences
    scores = report.model.score(held["text"])
    assert np.nanmin(scores) >= -1 and np.nanmax(scores) <= 1 and not np.isnan(scores).any()
    rising = held["label"].eq("positive") & held["text"].str.contains(r"\b(?:rose|increased|grew|up)\b")
    falling = held["label"].eq("negative") & held["text"].str.contains(r"\b(?:fell|decreased|dropped|down|loss)\b")
    assert rising.sum() >= 20 and falling.sum() >= 10
    assert (scores[rising.to_numpy()] > 0).mean() > 0.8
    assert (scores[falling.to_numpy()] < 0).mean() > 0.8
    by_label = pd.Series(scores).groupby(held["label"].to_numpy()).mean()
    assert by_label["positive"] > 0.2 and by_label["negative"] < -0.2
    assert by_label["positive"] > by_label["neutral"] > by_label["negative"]


def test_score_is_p_positive_minus_p_negative(report):
    texts = report.holdout_sentences["text"].head(50)
    proba = report.model.pipeline.predict_proba(texts)
    classes = list(report.model.pipeline.classes_)
    expected = proba[:, classes.index("positive")] - proba[:, classes.index("negative")]
    np.testing.assert_allclose(report.model.score(texts), expected, rtol=1e-12)


def test_empty_texts_score_nan_and_tweets_are_cleaned_the_same_way(report):
    model = report.model
    texts = ["", None, "   ", np.nan, "RT @someone: http://t.co/abc -- !", "Operating profit rose to EUR 13.1 mn"]
    scores = model.score(texts)
    assert np.isnan(scores[:5]).all() and scores[5] > 0
    assert list(model.predict(texts)[:5]) == [None] * 5
    assert model.score([]).shape == (0,)
    tweet = "RT @trader: $AAPL operating profit rose to EUR 13.1 mn http://t.co/xyz"
    assert model.score([tweet])[0] == pytest.approx(model.score(["$MSFT operating profit rose to EUR 13.1 mn"])[0])
    assert model.score([tweet])[0] == pytest.approx(model.score(["operating profit rose to EUR 13.1 mn"])[0], abs=0.2)


def test_clean_texts():
    cleaned = clean_texts(
        ["RT @philstockworld: Summary &amp; $AAPL $BRK.B #Options -- http://…", "cost $5 million www.x.com", None]
    )
    assert list(cleaned) == [f"Summary & {CASHTAG_TOKEN} {CASHTAG_TOKEN} #Options --", "cost $5 million", ""]


def test_the_pipeline_survives_pickling_as_mlflow_stores_it(report):
    texts = report.holdout_sentences["text"].head(20)
    restored = SentimentModel(pickle.loads(pickle.dumps(report.model.pipeline)))
    np.testing.assert_array_equal(restored.score(texts), report.model.score(texts))


def test_same_seed_same_model_other_seed_other_split(sentences):
    subset = sentences.groupby("label", group_keys=False).sample(frac=0.2, random_state=0)
    first, second = train_sentiment(subset, seed=3), train_sentiment(subset, seed=3)
    probe = sentences["text"].head(100)
    np.testing.assert_array_equal(first.model.score(probe), second.model.score(probe))
    assert (first.holdout_accuracy, first.cv_accuracy) == (second.holdout_accuracy, second.cv_accuracy)
    other = train_sentiment(subset, seed=4)
    assert not other.holdout_sentences["text"].equals(first.holdout_sentences["text"])


def test_a_malformed_file_names_its_lines(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(
        "label,news\n"
        "positive,Sales rose\n"
        "postive,Profit grew\n"
        "neutral,too,many\n"
        "negative,\n"
        'negative,"Caf\xe9 chain\'s sales fell"\n'.encode("latin-1")
    )
    with pytest.raises(PhraseBankFormatError) as error:
        load_phrasebank(path)
    message = str(error.value)
    assert "3 malformed row(s)" in message
    assert (
        "line 3: unknown label 'postive'" in message and "line 4: 3 fields" in message and "line 5: no text" in message
    )
    good = tmp_path / "good.csv"
    good.write_bytes('label,news\nnegative,"Caf\xe9 chain\'s sales fell"\n'.encode("latin-1"))
    assert load_phrasebank(good).to_dict("records") == [{"label": "negative", "text": "Café chain's sales fell"}]
    headless = tmp_path / "headless.csv"
    headless.write_text("positive,Sales rose\n", encoding="latin-1")
    with pytest.raises(PhraseBankFormatError, match="line 1: expected the header"):
        load_phrasebank(headless)
    with pytest.raises(ValueError, match="unknown labels"):
        train_sentiment(pd.DataFrame({"label": ["good"], "text": ["x"]}))
