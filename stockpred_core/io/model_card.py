"""A registered model version's metadata, written by training and read back in one place: the model card.

Training records a version's facts on its MLflow run (params, metrics, a tag) and on the version (tags) with the
names below (`card_params`, `card_tags`); the service, the promotion gate, evaluation and monitoring read them back
through `read_model_card` only. A fact an older version lacks takes its documented default (horizon, label, family:
listed in `ModelCard.defaulted`) or None; a caller that cannot do without one names it in `require` and gets a
`ModelCardError` naming the version and the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from stockpred_core.dataset.labels import DEFAULT_HORIZON, DEFAULT_LABEL, LABEL_KINDS

# MLflow is imported inside the readers that talk to the registry: a card alone (the served model of a GPU check,
# on a machine without MLflow) needs none
if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"

# Version tags (the family is also a run tag: versions registered without the version tag carry it there)
PARTITION_TAG = "dagster_partition"  # the training week, whose Monday is the cut-off
FAMILY_TAG = "model_family"
CHAMPION_FROM_TAG = "champion_from"  # set at promotion: the week from which the version is the model in force
# Run params
HORIZON_PARAM = "horizon"
LABEL_PARAM = "label"
FEATURE_SET_PARAM = "feature_set_version"
FEATURE_COLUMNS_PARAM = "feature_columns"  # comma-separated, in the model's order
CUTOFF_PARAM = "cutoff"
TRAIN_WEEKS_PARAM = "train_weeks"
SEGMENTS = ("train", "valid", "test")  # each a param "first..last"
# Run metrics: test_<name> (the test segment), cv_<name> (mean of the walk-forward folds), test_residual_<q05|q95>
TEST_PREFIX, CV_PREFIX, RESIDUAL_PREFIX = "test_", "cv_", "test_residual_"

DEFAULT_FAMILY = "lightgbm"  # versions registered before the family tag existed were all LightGBM
NO_RESIDUAL = 0.0  # a version without residual quantiles serves a zero-width interval

# Where each optional fact is recorded: what a `ModelCardError` tells the reader to look for
_RECORDED_AS = {
    "family": f"tag {FAMILY_TAG!r}",
    "horizon": f"param {HORIZON_PARAM!r}",
    "label": f"param {LABEL_PARAM!r}",
    "feature_set_version": f"param {FEATURE_SET_PARAM!r}",
    "feature_columns": f"param {FEATURE_COLUMNS_PARAM!r}",
    "week": f"version tag {PARTITION_TAG!r}",
    "cutoff": f"param {CUTOFF_PARAM!r} or version tag {PARTITION_TAG!r}",
    "train_weeks": f"param {TRAIN_WEEKS_PARAM!r}",
    "training_window": "params 'train' and 'test'",
    "test_window": "param 'test'",
    "champion_from": f"version tag {CHAMPION_FROM_TAG!r}",
}


class ModelCardError(LookupError):
    """A registered version whose recorded metadata lacks a fact its reader needs, or holds an unreadable one."""


Window = tuple[pd.Timestamp, pd.Timestamp]


@dataclass(frozen=True)
class ModelCard:
    """What the registry knows about one model version, typed; defaults of old versions applied once, here."""

    name: str
    version: str
    run_id: str
    family: str = DEFAULT_FAMILY
    horizon: int = DEFAULT_HORIZON  # sessions ahead the label looks
    label: str = DEFAULT_LABEL  # "return": predictions are forward returns; "rank": cross-sectional scores
    feature_set_version: str | None = None  # the feature registry the model was trained on
    feature_columns: tuple[str, ...] | None = None
    week: str | None = None  # the weekly partition that trained it
    cutoff: pd.Timestamp | None = None  # it saw data dated strictly before this day only
    train_weeks: int | None = None
    segments: Mapping[str, Window] = field(default_factory=dict)  # train / valid / test: first..last date
    metrics: Mapping[str, float] = field(default_factory=dict)  # the run's metrics, latest value of each
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)  # the version's tags
    defaulted: frozenset[str] = frozenset()  # the fields that took their default: the version does not record them

    @property
    def training_window(self) -> Window | None:
        """Every date the run fitted, early-stopped and tested on: the train segment's first to the test's last."""
        if "train" not in self.segments or "test" not in self.segments:
            return None
        return self.segments["train"][0], self.segments["test"][1]

    @property
    def test_window(self) -> Window | None:
        return self.segments.get("test")

    @property
    def champion_from(self) -> pd.Timestamp | None:
        found = self.tags.get(CHAMPION_FROM_TAG)
        return pd.Timestamp(found) if found else None

    @property
    def residual_q05(self) -> float:
        return self.metrics.get(f"{RESIDUAL_PREFIX}q05", NO_RESIDUAL)

    @property
    def residual_q95(self) -> float:
        return self.metrics.get(f"{RESIDUAL_PREFIX}q95", NO_RESIDUAL)

    def test_metric(self, name: str) -> float:
        """A metric of the held-out test segment (NaN when not recorded)."""
        return self.metrics.get(f"{TEST_PREFIX}{name}", math.nan)

    def cv_metric(self, name: str) -> float:
        """A metric averaged over the walk-forward folds inside the train segment (NaN when not recorded)."""
        return self.metrics.get(f"{CV_PREFIX}{name}", math.nan)

    def require(self, *fields: str) -> ModelCard:
        """This card, or a ModelCardError naming the first of `fields` the version does not record."""
        for name in fields:
            if name not in _RECORDED_AS:
                raise ValueError(f"a model card has no optional field {name!r}; it has {sorted(_RECORDED_AS)}")
            if name in self.defaulted or getattr(self, name) is None:
                raise ModelCardError(
                    f"model {self.name} v{self.version} (run {self.run_id}) records no {name} "
                    f"({_RECORDED_AS[name]}): it was not logged by the training assets"
                )
        return self


def card_params(
    *, horizon: int, label: str, cutoff: pd.Timestamp, segments: Mapping[str, str], train_weeks: int,
    feature_set_version: str, feature_columns: Iterable[str],
) -> dict[str, str]:  # fmt: skip
    """The run params a model card is read from (training logs them; segments as "first..last")."""
    unknown = set(segments) - set(SEGMENTS)
    if unknown:
        raise ValueError(f"segments are {SEGMENTS}, not {sorted(unknown)}")
    return {
        HORIZON_PARAM: str(int(horizon)),
        LABEL_PARAM: label,
        CUTOFF_PARAM: f"{pd.Timestamp(cutoff):%Y-%m-%d}",
        **{name: str(span) for name, span in segments.items()},
        TRAIN_WEEKS_PARAM: str(int(train_weeks)),
        FEATURE_SET_PARAM: feature_set_version,
        FEATURE_COLUMNS_PARAM: ",".join(feature_columns),
    }


def card_tags(week: str, family: str) -> dict[str, str]:
    """The tags a model card is read from, set on the run and on the registered version alike."""
    return {PARTITION_TAG: week, FAMILY_TAG: family}


def alias_version(client: MlflowClient, model_name: str, alias: str):
    """The registry's model version holding `alias`, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def read_model_card(
    client: MlflowClient, name: str, version_or_alias: str | int, require: Iterable[str] = ()
) -> ModelCard | None:
    """The card of version `version_or_alias` (a number) or of the version holding that alias; None when no version
    holds the alias. `require`: optional fields the caller cannot do without (see `ModelCard.require`)."""
    from mlflow.exceptions import MlflowException

    ref = str(version_or_alias)
    if ref.isdigit():
        try:
            version = client.get_model_version(name, ref)
        except MlflowException as exc:
            raise ModelCardError(f"model {name} has no version {ref}") from exc
    else:
        version = alias_version(client, name, ref)
        if version is None:
            return None
    return card_of(client, version).require(*require)


def card_of(client: MlflowClient, version) -> ModelCard:
    """The card of a registry `ModelVersion` already in hand (e.g. from `search_model_versions`)."""
    from mlflow.exceptions import MlflowException

    label = f"model {version.name} v{version.version}"
    if not version.run_id:
        raise ModelCardError(f"{label} has no MLflow run: it was not logged by the training assets")
    try:
        run = client.get_run(version.run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ModelCardError(f"{label}: its MLflow run {version.run_id} does not exist") from exc
    params, tags = run.data.params, dict(version.tags)
    defaulted = set()

    def param(key: str, field_name: str, parse, default=None):
        if key not in params:
            if default is not None:
                defaulted.add(field_name)
            return default
        try:
            return parse(params[key])
        except ValueError as exc:
            raise ModelCardError(f"{label} (run {version.run_id}) records an unreadable {field_name}: {exc}") from exc

    family = tags.get(FAMILY_TAG) or run.data.tags.get(FAMILY_TAG)
    if family is None:
        defaulted.add("family")
    week = tags.get(PARTITION_TAG)
    cutoff = param(CUTOFF_PARAM, "cutoff", pd.Timestamp)
    if cutoff is None and week:
        cutoff = pd.Timestamp(week)
    return ModelCard(
        name=version.name,
        version=str(version.version),
        run_id=version.run_id,
        family=family or DEFAULT_FAMILY,
        horizon=param(HORIZON_PARAM, "horizon", int, DEFAULT_HORIZON),
        label=param(LABEL_PARAM, "label", _label_kind, DEFAULT_LABEL),
        feature_set_version=params.get(FEATURE_SET_PARAM),
        feature_columns=param(FEATURE_COLUMNS_PARAM, "feature_columns", lambda s: tuple(s.split(","))),
        week=week,
        cutoff=cutoff,
        train_weeks=param(TRAIN_WEEKS_PARAM, "train_weeks", int),
        segments={s: param(s, f"{s} segment", _window) for s in SEGMENTS if s in params},
        metrics=dict(run.data.metrics),
        aliases=tuple(getattr(version, "aliases", None) or ()),
        tags=tags,
        defaulted=frozenset(defaulted),
    )


def _window(text: str) -> Window:
    first, sep, last = text.partition("..")
    if not sep:
        raise ValueError(f"{text!r} is not 'first..last'")
    return pd.Timestamp(first), pd.Timestamp(last)


def _label_kind(text: str) -> str:
    if text not in LABEL_KINDS:
        raise ValueError(f"{text!r} is none of {LABEL_KINDS}")
    return text
