"""The offline sentiment model: TF-IDF + logistic regression trained by the project on labelled financial sentences,
versioned in MLflow as its own registered model; scoring loads it from the registry, never from the network."""

import hashlib
from importlib.metadata import version as package_version
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from pydantic import Field

from stockpred_assets.alternative.ingestion import GROUP
from stockpred_assets.metadata import float_metadata, frame_table
from stockpred_core.io.model_card import CHAMPION_ALIAS, alias_version
from stockpred_core.models.sentiment import (
    SentimentModel,
    SentimentReport,
    clean_texts,
    load_phrasebank,
    train_sentiment,
)
from stockpred_resources.tracking import MLflowResource

SUFFIX = "-sentiment"
METRICS = ("holdout_accuracy", "cv_accuracy", "cv_accuracy_std", "neutral_baseline_accuracy")
CONFUSION_FILE = "confusion.json"
TRUSTED_CLEANER = f"{clean_texts.__module__}.{clean_texts.__name__}"


def sentiment_model_name(mlflow_resource: MLflowResource) -> str:
    """The registered model of the sentiment versions: `<registered_model>-sentiment`."""
    return f"{mlflow_resource.registered_model}{SUFFIX}"


class SentimentConfig(dg.Config):
    sentences: str | None = None  # a labelled sentences CSV (label,news) instead of the configured one
    seed: int = 0
    # the logistic regression class weights 5-fold CV picks from ("none" or "balanced")
    class_weights: list[str] = Field(default_factory=lambda: ["none", "balanced"])
    char_ngrams: bool = True  # character 3-5 grams beside the word 1-2 grams (slower, a little more accurate)


def _train(path: str, config: SentimentConfig) -> tuple[SentimentReport, str]:
    source = Path(path)
    if not source.is_file():
        raise dg.Failure(f"the labelled sentences file {source} does not exist (STOCKPRED_SENTIMENT_SENTENCES)")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    weights = [None if w.lower() == "none" else w for w in config.class_weights]
    report = train_sentiment(
        load_phrasebank(source), seed=config.seed, class_weights=weights, char_ngrams=config.char_ngrams
    )
    return report, digest


def _log(report: SentimentReport, name: str, params: dict) -> tuple:
    """Params, metrics, the confusion table and the scikit-learn pipeline into the active run; registered as a new
    version of `name`."""
    mlflow.log_params(params)
    mlflow.log_metrics({metric: float(getattr(report, metric)) for metric in METRICS})
    mlflow.log_table(report.confusion.reset_index().rename(columns={"index": "actual"}), CONFUSION_FILE)
    example = np.array(["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn", "Sales fell by 10 %"])
    return mlflow.sklearn.log_model(
        report.model.pipeline,
        name="model",
        registered_model_name=name,
        signature=infer_signature(example, report.model.pipeline.predict(example)),
        pip_requirements=[f"scikit-learn=={package_version('scikit-learn')}"],
        skops_trusted_types=[TRUSTED_CLEANER],  # the pipeline's first step: the project's own text cleaner
    )


def build_sentiment_model(sentences: str | None) -> dg.AssetsDefinition:
    """The sentiment_model asset, reading `sentences` (the configured labelled sentences) unless its config says."""

    @dg.asset(group_name=GROUP, kinds={"scikit-learn", "mlflow"})
    def sentiment_model(
        context: dg.AssetExecutionContext, config: SentimentConfig, mlflow_resource: MLflowResource
    ) -> dg.MaterializeResult:
        """Text sentiment in [-1, 1] for news and posts, trained offline on labelled financial sentences; the
        champion alias goes to a version whose hold-out accuracy beats always answering neutral."""
        path = config.sentences or sentences
        if not path:
            raise dg.Failure("no labelled sentences to train on: set STOCKPRED_SENTIMENT_SENTENCES to a label,news CSV")
        report, digest = _train(path, config)
        name = sentiment_model_name(mlflow_resource)
        params = {
            "sentences_file": Path(path).name,
            "sentences_sha256": digest,
            "seed": config.seed,
            "char_ngrams": config.char_ngrams,
            "class_weight": str(report.class_weight),
            "n_train": report.n_train,
            "n_holdout": report.n_holdout,
            "labels": ",".join(report.labels),
        }
        tags = {"model_family": "sentiment", "dagster_run_id": context.run.run_id}
        with mlflow_resource.start_run("sentiment", tags) as run:
            info = _log(report, name, params)
        version = str(info.registered_model_version)
        client = mlflow_resource.client()
        beats = report.holdout_accuracy > report.neutral_baseline_accuracy
        if beats:
            client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        else:
            context.log.warning(
                f"{name} v{version}: hold-out accuracy {report.holdout_accuracy:.3f} does not beat always-neutral "
                f"{report.neutral_baseline_accuracy:.3f}; the {CHAMPION_ALIAS} alias stays where it was"
            )
        return dg.MaterializeResult(
            metadata={
                "mlflow_run": dg.MetadataValue.url(mlflow_resource.run_url(run.info.experiment_id, run.info.run_id)),
                "mlflow_run_id": run.info.run_id,
                "registered_model": name,
                "model_version": version,
                "champion": dg.MetadataValue.bool(beats),
                "sentences": dg.MetadataValue.path(str(path)),
                "n_train": report.n_train,
                "n_holdout": report.n_holdout,
                "confusion": frame_table(report.confusion, index=True),
                **float_metadata({metric: getattr(report, metric) for metric in METRICS}),
            }
        )

    return sentiment_model


def champion_sentiment(mlflow_resource: MLflowResource) -> tuple[SentimentModel, str]:
    """The sentiment model version holding the champion alias, and its version; a clear failure when none does."""
    client, name = mlflow_resource.client(), sentiment_model_name(mlflow_resource)
    version = alias_version(client, name, CHAMPION_ALIAS)
    if version is None:
        raise dg.Failure(
            f"no version of {name} holds the {CHAMPION_ALIAS} alias: materialize sentiment_model first "
            "(news and posts without a vendor score are scored by it)"
        )
    pipeline = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
    return SentimentModel(pipeline), str(version.version)


def score_texts(model: SentimentModel, texts: pd.Series) -> np.ndarray:
    """Sentiment in [-1, 1] of each text (empty texts score NaN)."""
    filled = texts.fillna("").astype(str).str.strip()
    scores = np.full(len(filled), np.nan)
    present = (filled != "").to_numpy()
    if present.any():
        scores[present] = model.score(filled[present].tolist())
    return scores
