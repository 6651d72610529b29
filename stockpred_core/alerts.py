"""Alert rules on the refreshed predictions, per subscriber, with a cool-down; alerts go to the events stream.

A subscription (`Subscription`) names a subscriber, optionally the tickers it follows (none: all), its rules and a
cool-down. Rule kinds, each on the answer's "prediction" (a return, or a rank model's score):
- `above` / `below` (threshold): prediction > threshold / prediction < threshold;
- `interval_excludes_zero`: interval_low > 0 (the interval lies above zero) or interval_high < 0 (below zero);
- `top_n` / `bottom_n` (n): the ticker is among the n highest / lowest latest predictions of all tickers seen
  (ties at the edge are broken arbitrarily);
- `change` (threshold > 0): |prediction - reference| >= threshold, the reference being the prediction at this
  subscriber's last alert for the ticker, or the first prediction seen.

When a rule alerts (per subscriber, rule and ticker, the rule named like "above 0.02" or "top_n 10"):
- condition rules (all but `change`) alert when the condition becomes true (a crossing; entering the top n), not
  while it stays true: an alert disarms the rule for the ticker, and the condition going false re-arms it. For
  `interval_excludes_zero`, the interval jumping from one side of zero to the other counts as a new crossing.
- cool-down: no alert within `cooldown_s` of the last one. A crossing within the cool-down is not dropped: the rule
  stays armed and alerts at the first evaluation after the cool-down where the condition still holds. So a value
  flapping across the threshold alerts once per cool-down.
- `change` alerts whenever the distance to the reference reaches the threshold (after the cool-down), and the
  reference becomes the alerted value.
- A ticker never seen counts as armed with no reference: a new subscription alerts for the tickers already past its
  thresholds (at their next refresh; top_n at the next batch).
- A missing (null/NaN) prediction or interval bound neither alerts nor re-arms, and the ranks keep the ticker's
  last known prediction.

State survives a restart of the worker in two Redis hashes (`STATE_KEY` by default), written on the batch's pipeline
by `AlertEngine.state_writes` (only what changed since the last call) and read back by `AlertEngine.load_state`:
- `<state_key>`: field JSON `[subscriber, rule, ticker]` -> JSON `[armed, last_alert_epoch_s | null, ref | null]`
  (ref: the `change` reference, or the side (1/-1) last alerted by `interval_excludes_zero`);
- `<state_key>:latest`: ticker -> JSON `[prediction, as_of, model_version]`, the latest answer of every ticker, so
  that ranks after a restart are over the whole universe (not just the tickers refreshed since), and a top_n entry
  alert for a ticker outside the batch carries its answer's as_of and model version.
Fields of a rule no longer subscribed stay in the hash and are ignored. When a pipeline carrying the writes failed,
call `state_writes(pipe, full=True)` on the next one. An alert written but whose batch is redelivered (a crash
between the write and the acknowledgement) may be sent again: alerts are at-least-once, like the batch.

Subscriptions come from a YAML/JSON file (`load_subscriptions`) or from the Redis hash `SUBSCRIPTIONS_KEY`
(subscriber -> JSON of its subscription; `RedisSubscriptions.poll` re-reads it when the counter `<key>:version`
changes, which `put_subscription`/`delete_subscription` increment, or every `refresh_s`). A bad entry in the hash is
logged and skipped.

File format (YAML or JSON; `tickers`, `cooldown_s` and the delivery settings optional):

    subscriptions:
      - subscriber: desk-a
        tickers: [AAPL, MSFT]
        cooldown_s: 600
        rules:
          - {kind: above, threshold: 0.02}
          - {kind: interval_excludes_zero, channels: [slack]}
          - {kind: top_n, n: 10}
          - {kind: change, threshold: 0.01}
        channels: {email: a@example.com, slack: default, sms: "+15550100", webhook: "https://hooks.example/x"}
        quiet_hours: "22:00-07:00"
        timezone: America/New_York
        max_per_hour: 20
        daily_report: true

Delivery settings (read by `stockpred_core.notify`, ignored by the engine): `channels`, the subscriber's address per
channel (email, slack: a webhook URL or `default` for STOCKPRED_SLACK_WEBHOOK_URL, sms: an E.164 number, webhook: a
URL); a rule's `channels`, the ones its alerts go to (default: all the subscriber has); `quiet_hours` "HH:MM-HH:MM"
in `timezone` (an IANA name, default UTC; the window may wrap midnight); `max_per_hour`, notified alerts per hour;
`daily_report`, the `insights` asset's email. A subscription with `daily_report` may have no rules.

Alerts (`AlertEngine.evaluate`) are dicts {"subscriber", "rule", "ticker", "value", "threshold", "message", "as_of",
"model_version"} (value: the prediction, or for `interval_excludes_zero` the bound that excludes zero; threshold: the
rule's, n for top_n/bottom_n, 0 for interval_excludes_zero; as_of: the answer's feature_time), XADDed to the events
stream by `publish_alerts` (see stockpred_core/io/stream_events.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import redis
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stockpred_core.io.stream_events import add_alert

logger = logging.getLogger("stockpred.stream")

SUBSCRIPTIONS_KEY = "stockpred:alerts:subscriptions"
STATE_KEY = "stockpred:alerts:state"
DEFAULT_COOLDOWN_S = 900.0

RuleKind = Literal["above", "below", "interval_excludes_zero", "top_n", "bottom_n", "change"]
ChannelName = Literal["email", "slack", "sms", "webhook"]
CHANNELS: tuple[str, ...] = ("email", "slack", "sms", "webhook")
_QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_THRESHOLD_KINDS = {"above", "below", "change"}
_RANK_KINDS = {"top_n", "bottom_n"}
_EPS = 1e-12  # `change`: a distance equal to the threshold up to float rounding reaches it


class SubscriptionError(ValueError):
    """A subscription that does not validate; the message names the subscriber and the rule."""


class Rule(BaseModel):
    """One rule: `threshold` for above/below/change, `n` for top_n/bottom_n, neither for interval_excludes_zero."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: RuleKind
    threshold: float | None = None
    n: int | None = None
    channels: tuple[ChannelName, ...] | None = None  # where its alerts go; None: every channel of the subscriber

    @model_validator(mode="after")
    def _fits_its_kind(self) -> Rule:
        if self.kind in _THRESHOLD_KINDS:
            if self.threshold is None:
                raise ValueError(f"{self.kind} needs a threshold")
            if not math.isfinite(self.threshold):
                raise ValueError(f"threshold must be a finite number, got {self.threshold}")
            if self.kind == "change" and self.threshold <= 0:
                raise ValueError(f"change needs a threshold > 0, got {self.threshold}")
        elif self.threshold is not None:
            raise ValueError(f"{self.kind} takes no threshold")
        if self.kind in _RANK_KINDS:
            if self.n is None:
                raise ValueError(f"{self.kind} needs n")
            if self.n < 1:
                raise ValueError(f"{self.kind} needs n >= 1, got {self.n}")
        elif self.n is not None:
            raise ValueError(f"{self.kind} takes no n")
        return self

    @property
    def name(self) -> str:
        """How alerts and the state name the rule: "above 0.02", "top_n 10", "interval_excludes_zero"."""
        if self.kind in _RANK_KINDS:
            return f"{self.kind} {self.n}"
        if self.threshold is not None:
            return f"{self.kind} {self.threshold:g}"
        return self.kind


class Subscription(BaseModel):
    """A subscriber's rules, the tickers it follows (None: all) and its cool-down per (rule, ticker) in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subscriber: str = Field(min_length=1)
    tickers: tuple[str, ...] | None = None
    daily_report: bool = False  # before `rules`: a subscription with it may have none
    rules: tuple[Rule, ...]
    cooldown_s: float = Field(default=DEFAULT_COOLDOWN_S, ge=0, allow_inf_nan=False)
    # delivery (stockpred_core.notify; see the module docstring)
    channels: dict[ChannelName, str] = Field(default_factory=dict)
    quiet_hours: str | None = None
    timezone: str = "UTC"
    max_per_hour: int | None = Field(default=None, ge=1)

    @field_validator("tickers")
    @classmethod
    def _some_tickers(cls, tickers: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if tickers is not None and not tickers:
            raise ValueError("tickers is empty: leave it out to follow every ticker")
        return tickers

    @field_validator("rules")
    @classmethod
    def _some_rules(cls, rules: tuple[Rule, ...], info: ValidationInfo) -> tuple[Rule, ...]:
        if not rules and not info.data.get("daily_report"):
            raise ValueError("no rules: a subscription needs at least one (or daily_report: true)")
        return rules

    @field_validator("quiet_hours")
    @classmethod
    def _hh_mm_range(cls, quiet_hours: str | None) -> str | None:
        if quiet_hours is not None and not _QUIET_HOURS.match(quiet_hours):
            raise ValueError(f"quiet_hours must look like 22:00-07:00, got {quiet_hours!r}")
        return quiet_hours

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r} (an IANA name such as America/New_York)") from None
        return timezone

    @field_validator("channels")
    @classmethod
    def _addresses(cls, channels: dict[str, str]) -> dict[str, str]:
        empty = sorted(name for name, address in channels.items() if not address.strip())
        if empty:
            raise ValueError(f"no address for {', '.join(empty)}")
        return channels

    @model_validator(mode="after")
    def _distinct_rules(self) -> Subscription:
        names = [rule.name for rule in self.rules]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"the same rule twice: {', '.join(twice)}")
        for rule in self.rules:
            missing = [c for c in rule.channels or () if c not in self.channels]
            if missing:
                raise ValueError(f"rule {rule.name} uses {', '.join(missing)}, which the subscriber has no address for")
        return self

    def rule_channels(self, rule: str) -> list[str]:
        """The channels (with an address) that the alerts of the rule named `rule` go to."""
        chosen = next((r.channels for r in self.rules if r.name == rule), None)
        return [c for c in CHANNELS if c in self.channels and (chosen is None or c in chosen)]

    def in_quiet_hours(self, at: dt.datetime) -> bool:
        """Whether `at` (timezone-aware) falls in the quiet hours, read in the subscriber's time zone; the window
        includes its start and excludes its end, and wraps midnight when its end comes first (22:00-07:00)."""
        if self.quiet_hours is None:
            return False
        from zoneinfo import ZoneInfo

        local = at.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        start_h, start_m, end_h, end_m = (int(x) for x in _QUIET_HOURS.match(self.quiet_hours).groups())
        start, end = start_h * 60 + start_m, end_h * 60 + end_m
        return start <= minute < end if start <= end else minute >= start or minute < end


def parse_subscription(data: Any, *, subscriber: str | None = None) -> Subscription:
    """A subscription from its parsed JSON/YAML; `subscriber` (a Redis hash field) fills or must match its id.
    Raises SubscriptionError naming the subscriber and the rule (`rules[i]`, 0-based, and its kind)."""
    name = subscriber
    if isinstance(data, Mapping):
        data = dict(data)
        if subscriber is not None:
            if data.setdefault("subscriber", subscriber) != subscriber:
                raise SubscriptionError(
                    f"subscriber {subscriber!r}: its JSON names another subscriber, {data['subscriber']!r}"
                )
        name = data.get("subscriber", name)
    try:
        return Subscription.model_validate(data)
    except ValidationError as exc:
        raise SubscriptionError(_explain(name, data, exc)) from None


def parse_subscriptions(data: Any, *, source: str = "subscriptions") -> list[Subscription]:
    """Subscriptions from a parsed file: {"subscriptions": [subscription, ...]} (or the bare list). Every problem is
    reported at once, in one SubscriptionError."""
    if isinstance(data, Mapping) and set(data) == {"subscriptions"}:
        data = data["subscriptions"]
    if not isinstance(data, list):
        raise SubscriptionError(f"{source}: expected a list of subscriptions under 'subscriptions'")
    subscriptions, problems, seen = [], [], set()
    for i, item in enumerate(data):
        try:
            subscription = parse_subscription(item)
        except SubscriptionError as exc:
            problems.append(str(exc) if isinstance(item, Mapping) and "subscriber" in item else f"[{i}] {exc}")
            continue
        if subscription.subscriber in seen:
            problems.append(f"subscriber {subscription.subscriber!r}: subscribed twice")
        seen.add(subscription.subscriber)
        subscriptions.append(subscription)
    if problems:
        raise SubscriptionError(f"{source}: " + "; ".join(problems))
    return subscriptions


def load_subscriptions(path: str | Path) -> list[Subscription]:
    """Subscriptions from a YAML (.yaml/.yml) or JSON file (see the module docstring for the format)."""
    path = Path(path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml  # only for YAML files: PyYAML comes with Dagster, the worker's image may lack it

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SubscriptionError(f"{path}: not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SubscriptionError(f"{path}: not valid JSON: {exc}") from None
    return parse_subscriptions(data, source=str(path))


def _explain(subscriber: str | None, data: Any, exc: ValidationError) -> str:
    """A pydantic error as `subscriber 'x', rules[1] (top_n): n: ...`, one clause per error."""
    who = f"subscriber {subscriber!r}" if subscriber else "a subscription"
    rules = data.get("rules") if isinstance(data, Mapping) else None
    clauses = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            i = loc[1]
            raw = rules[i] if isinstance(rules, list) and i < len(rules) else None
            kind = raw.get("kind") if isinstance(raw, Mapping) else None
            where = f"rules[{i}]" + (f" ({kind})" if kind is not None else "")
            loc = loc[2:]
        msg = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing" and loc:
            msg = f"{loc[-1]} is missing"
            loc = loc[:-1]
        field = ".".join(str(part) for part in loc)
        clauses.append(", ".join(part for part in (where, f"{field}: {msg}" if field else msg) if part))
    return f"{who}: " + "; ".join(clauses)


# --- subscriptions in Redis -------------------------------------------------------------------------------------


def version_key(key: str = SUBSCRIPTIONS_KEY) -> str:
    """The counter a manager increments after changing the subscriptions hash `key`."""
    return f"{key}:version"


def read_subscriptions(client: redis.Redis, key: str = SUBSCRIPTIONS_KEY) -> list[Subscription]:
    """Every valid subscription of the hash `key` (subscriber -> JSON), by subscriber; a bad one is logged, skipped."""
    subscriptions = []
    for field, value in sorted(client.hgetall(key).items()):
        name = field.decode(errors="replace")
        try:
            subscriptions.append(parse_subscription(orjson.loads(value), subscriber=name))
        except (SubscriptionError, orjson.JSONDecodeError) as exc:
            logger.warning("skipping the alert subscription %r of %s: %s", name, key, exc)
    return subscriptions


def put_subscription(client: redis.Redis, subscription: Subscription, key: str = SUBSCRIPTIONS_KEY) -> None:
    """Add or replace a subscription in Redis (and bump the version, so workers re-read it)."""
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, subscription.subscriber, subscription.model_dump_json(exclude={"subscriber"}))
    pipe.incr(version_key(key))
    pipe.execute()


def delete_subscription(client: redis.Redis, subscriber: str, key: str = SUBSCRIPTIONS_KEY) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.hdel(key, subscriber)
    pipe.incr(version_key(key))
    pipe.execute()


class RedisSubscriptions:
    """The subscriptions of a Redis hash, re-read when its version counter changed (checked at most every
    `check_s`) or every `refresh_s` whatever the counter. Redis errors propagate (the worker retries)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        key: str = SUBSCRIPTIONS_KEY,
        check_s: float = 1.0,
        refresh_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.key, self.check_s, self.refresh_s, self.clock = client, key, check_s, refresh_s, clock
        self._version: bytes | None = None
        self._loaded_at: float | None = None
        self._checked_at = -math.inf

    def poll(self) -> list[Subscription] | None:
        """The subscriptions when they are due to be (re-)read (always on the first call), else None."""
        now = self.clock()
        if self._loaded_at is not None and now - self._checked_at < self.check_s:
            return None
        self._checked_at = now
        version = self.client.get(version_key(self.key))
        if self._loaded_at is not None and version == self._version and now - self._loaded_at < self.refresh_s:
            return None
        # version read first: a change landing between the two reads is read again at the next check
        self._version, self._loaded_at = version, now
        return read_subscriptions(self.client, self.key)


# --- the engine -------------------------------------------------------------------------------------------------


class _RuleState:
    """One (subscriber, rule)'s state per ticker index: armed, last alert time (-inf: never), ref (NaN: none), and
    which entries changed since the last `state_writes`."""

    def __init__(self, rule: Rule, capacity: int) -> None:
        self.rule, self.name = rule, rule.name
        self.armed = np.ones(capacity, dtype=bool)
        self.last = np.full(capacity, -np.inf)
        self.ref = np.full(capacity, np.nan)
        self.dirty = np.zeros(capacity, dtype=bool)

    def grow(self, capacity: int) -> None:
        self.armed = _grown(self.armed, capacity, True)
        self.last = _grown(self.last, capacity, -np.inf)
        self.ref = _grown(self.ref, capacity, np.nan)
        self.dirty = _grown(self.dirty, capacity, False)

    def alerted(self, at: np.ndarray, now: float) -> None:
        self.armed[at] = False
        self.last[at] = now
        self.dirty[at] = True

    def rearm(self, at: np.ndarray) -> None:
        self.armed[at] = True
        self.dirty[at] = True


def _grown(array: np.ndarray, capacity: int, fill: Any) -> np.ndarray:
    out = np.full(capacity, fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


class _SubscriberState:
    def __init__(self, subscription: Subscription, rules: list[_RuleState]) -> None:
        self.subscription, self.rules = subscription, rules
        self.tickers = None if subscription.tickers is None else frozenset(subscription.tickers)
        self.mask: np.ndarray | None = None  # ticker index -> followed (None: all)


class AlertEngine:
    """Evaluates the subscriptions' rules on each batch of refreshed answers (see the module docstring): keeps the
    latest prediction of every ticker seen (for the ranks) and the per (subscriber, rule, ticker) state, in arrays
    indexed by ticker, so a batch costs a few numpy operations per rule whatever the universe."""

    def __init__(
        self,
        subscriptions: Iterable[Subscription],
        *,
        clock: Callable[[], float] = time.time,
        state_key: str = STATE_KEY,
    ) -> None:
        self.clock, self.state_key = clock, state_key
        self._index: dict[str, int] = {}
        self._tickers: list[str] = []
        self._capacity = 1024
        self._prediction = np.full(self._capacity, np.nan)
        self._as_of: list[str | None] = []
        self._model_version: list[str | None] = []
        self._latest_dirty = np.zeros(self._capacity, dtype=bool)
        self._subscribers: list[_SubscriberState] = []
        self.set_subscriptions(subscriptions)

    @property
    def subscriptions(self) -> list[Subscription]:
        return [s.subscription for s in self._subscribers]

    def set_subscriptions(self, subscriptions: Iterable[Subscription]) -> None:
        """Replace the subscriptions; a (subscriber, rule) kept keeps its state, a new one starts armed."""
        subscriptions = list(subscriptions)
        names = [s.subscriber for s in subscriptions]
        if len(set(names)) != len(names):
            raise SubscriptionError(f"subscribed twice: {sorted({n for n in names if names.count(n) > 1})}")
        old = {(s.subscription.subscriber, r.name): r for s in self._subscribers for r in s.rules}
        self._subscribers = []
        for subscription in subscriptions:
            rules = []
            for rule in subscription.rules:
                state = old.get((subscription.subscriber, rule.name)) or _RuleState(rule, self._capacity)
                rules.append(state)
            subscriber = _SubscriberState(subscription, rules)
            if subscriber.tickers is not None:
                subscriber.mask = np.zeros(self._capacity, dtype=bool)
                for i, ticker in enumerate(self._tickers):
                    subscriber.mask[i] = ticker in subscriber.tickers
            self._subscribers.append(subscriber)

    # --- the universe ---

    def _ticker_index(self, ticker: str) -> int:
        i = self._index.get(ticker)
        if i is not None:
            return i
        i = len(self._tickers)
        if i == self._capacity:
            self._grow(2 * self._capacity)
        self._index[ticker] = i
        self._tickers.append(ticker)
        self._as_of.append(None)
        self._model_version.append(None)
        for subscriber in self._subscribers:
            if subscriber.mask is not None:
                subscriber.mask[i] = ticker in subscriber.tickers
        return i

    def _grow(self, capacity: int) -> None:
        self._capacity = capacity
        self._prediction = _grown(self._prediction, capacity, np.nan)
        self._latest_dirty = _grown(self._latest_dirty, capacity, False)
        for subscriber in self._subscribers:
            if subscriber.mask is not None:
                subscriber.mask = _grown(subscriber.mask, capacity, False)
            for state in subscriber.rules:
                state.grow(capacity)

    # --- evaluation ---

    def evaluate(self, answers: Sequence[Mapping | bytes]) -> list[dict]:
        """The alerts a batch of refreshed answers (dicts, or the JSON bytes the service serves) raises, in
        subscription and rule order; the last answer of a ticker in the batch wins."""
        now = self.clock()
        latest: dict[str, Mapping] = {}
        for answer in answers:
            if isinstance(answer, bytes | str):
                answer = orjson.loads(answer)
            latest[answer["ticker"]] = answer
        if not latest:
            return []
        positions = [self._index.get(t) for t in latest]  # the hot path: a new ticker is rare after the first batches
        if None in positions:
            positions = [self._ticker_index(t) for t in latest]
        idx = np.array(positions, dtype=np.intp)
        docs = list(latest.values())
        value = np.array([d.get("prediction") for d in docs], dtype=float)
        low = np.array([d.get("interval_low") for d in docs], dtype=float)
        high = np.array([d.get("interval_high") for d in docs], dtype=float)
        for i, d in zip(positions, docs, strict=True):
            self._as_of[i] = d.get("feature_time") or d.get("feature_date")
            self._model_version[i] = d.get("model_version")
        batch = _Batch(idx, value, low, high)
        self._prediction[idx[batch.valid]] = value[batch.valid]  # a missing prediction keeps the last one known
        self._latest_dirty[idx] = True

        ranked: dict[tuple[str, int], np.ndarray] = {}  # (kind, n) -> the member indices, best first
        alerts: list[dict] = []
        for subscriber in self._subscribers:
            subscription = subscriber.subscription
            followed = batch.valid if subscriber.mask is None else batch.valid & subscriber.mask[idx]
            for state in subscriber.rules:
                kind = state.rule.kind
                if kind in _RANK_KINDS:
                    key = (kind, state.rule.n)
                    if key not in ranked:
                        ranked[key] = self._members(kind, state.rule.n)
                    fired = self._rank_rule(subscriber, state, ranked[key], now)
                elif kind == "interval_excludes_zero":
                    fired = self._interval_rule(state, batch, followed, subscription.cooldown_s, now)
                elif kind == "change":
                    fired = self._change_rule(state, batch, followed, subscription.cooldown_s, now)
                else:
                    fired = self._threshold_rule(state, batch, followed, subscription.cooldown_s, now)
                alerts += self._alerts(subscription, state, fired)
        return alerts

    def _threshold_rule(
        self, state: _RuleState, batch: _Batch, followed: np.ndarray, cooldown_s: float, now: float
    ) -> list[tuple]:
        th = state.rule.threshold
        cond = batch.value > th if state.rule.kind == "above" else batch.value < th
        at = batch.idx
        armed = state.armed[at]
        fire = followed & cond & armed & (now - state.last[at] >= cooldown_s)
        state.rearm(at[followed & ~cond & ~armed])
        fired = at[fire]
        state.alerted(fired, now)
        verb = "rose above" if state.rule.kind == "above" else "fell below"
        return [
            (i, v, th, f"{self._tickers[i]}: prediction {v:.4g} {verb} {th:g}")
            for i, v in zip(fired.tolist(), batch.value[fire].tolist(), strict=True)
        ]

    def _interval_rule(
        self, state: _RuleState, batch: _Batch, followed: np.ndarray, cooldown_s: float, now: float
    ) -> list[tuple]:
        at = batch.idx
        followed = followed & ~np.isnan(batch.low) & ~np.isnan(batch.high)
        side = np.where(batch.low > 0, 1.0, np.where(batch.high < 0, -1.0, 0.0))
        cond = side != 0
        armed = state.armed[at]
        fresh = armed | (side != state.ref[at])  # the interval jumped to the other side: a new crossing
        fire = followed & cond & fresh & (now - state.last[at] >= cooldown_s)
        state.rearm(at[followed & ~cond & ~armed])
        fired = at[fire]
        state.alerted(fired, now)
        state.ref[fired] = side[fire]
        out = []
        for i, s, lo, hi, v in zip(
            fired.tolist(),
            side[fire].tolist(),
            batch.low[fire].tolist(),
            batch.high[fire].tolist(),
            batch.value[fire].tolist(),
            strict=True,
        ):
            where = "above" if s > 0 else "below"
            message = (
                f"{self._tickers[i]}: prediction interval [{lo:.4g}, {hi:.4g}] lies {where} zero (prediction {v:.4g})"
            )
            out.append((i, lo if s > 0 else hi, 0.0, message))
        return out

    def _change_rule(
        self, state: _RuleState, batch: _Batch, followed: np.ndarray, cooldown_s: float, now: float
    ) -> list[tuple]:
        th = state.rule.threshold
        at = batch.idx
        ref = state.ref[at]
        first = followed & np.isnan(ref)
        state.ref[at[first]] = batch.value[first]
        state.dirty[at[first]] = True
        fire = followed & ~first & (np.abs(batch.value - ref) >= th - _EPS) & (now - state.last[at] >= cooldown_s)
        fired = at[fire]
        state.alerted(fired, now)
        state.armed[fired] = True  # change has no crossing: always armed
        values = batch.value[fire]
        state.ref[fired] = values
        out = []
        for i, v, r in zip(fired.tolist(), values.tolist(), ref[fire].tolist(), strict=True):
            message = f"{self._tickers[i]}: prediction moved {v - r:+.4g} to {v:.4g} (from {r:.4g})"
            out.append((i, v, th, message))
        return out

    def _members(self, kind: str, n: int) -> np.ndarray:
        """The indices of the n highest (top_n) / lowest (bottom_n) latest predictions, best first."""
        count = len(self._tickers)
        key = self._prediction[:count]
        key = np.where(np.isnan(key), -np.inf, key if kind == "top_n" else -key)
        k = min(n, int(np.count_nonzero(key > -np.inf)))
        if k == 0:
            return np.empty(0, dtype=np.intp)
        part = np.argpartition(-key, k - 1)[:k] if k < count else np.arange(count)
        return part[np.argsort(-key[part], kind="stable")]

    def _rank_rule(
        self, subscriber: _SubscriberState, state: _RuleState, members: np.ndarray, now: float
    ) -> list[tuple]:
        count = len(self._tickers)
        cond = np.zeros(count, dtype=bool)
        cond[members] = True
        armed = state.armed[:count]
        fire = cond & armed & (now - state.last[:count] >= subscriber.subscription.cooldown_s)
        rearm = ~cond & ~armed
        if subscriber.mask is not None:
            fire &= subscriber.mask[:count]
            rearm &= subscriber.mask[:count]
        state.rearm(np.flatnonzero(rearm))
        fired = np.flatnonzero(fire)
        if not len(fired):
            return []
        state.alerted(fired, now)
        rank = {i: r for r, i in enumerate(members.tolist(), start=1)}
        where = "top" if state.rule.kind == "top_n" else "bottom"
        known = int(np.count_nonzero(~np.isnan(self._prediction[:count])))
        out = []
        for i in sorted(fired.tolist(), key=rank.__getitem__):
            v = float(self._prediction[i])
            message = (
                f"{self._tickers[i]} entered the {where} {state.rule.n} by prediction "
                f"(rank {rank[i]} of {known}, prediction {v:.4g})"
            )
            out.append((i, v, state.rule.n, message))
        return out

    def _alerts(self, subscription: Subscription, state: _RuleState, fired: list[tuple]) -> list[dict]:
        return [
            {
                "subscriber": subscription.subscriber,
                "rule": state.name,
                "ticker": self._tickers[i],
                "value": value,
                "threshold": threshold,
                "message": message,
                "as_of": self._as_of[i],
                "model_version": self._model_version[i],
            }
            for i, value, threshold, message in fired
        ]

    # --- state in Redis ---

    def state_writes(self, pipe: redis.client.Pipeline | redis.Redis, *, full: bool = False) -> int:
        """Queue on `pipe` the state changed since the last call (everything with `full`: after a failed pipeline,
        or Redis restarted empty); how many hash fields it writes."""
        count = len(self._tickers)
        written = 0
        fields: dict[bytes, bytes] = {}
        for subscriber in self._subscribers:
            name = subscriber.subscription.subscriber
            for state in subscriber.rules:
                if full:
                    changed = ~state.armed[:count] | (state.last[:count] > -np.inf) | ~np.isnan(state.ref[:count])
                else:
                    changed = state.dirty[:count]
                at = np.flatnonzero(changed)
                state.dirty[:count] = False
                for i, armed, last, ref in zip(
                    at.tolist(),
                    state.armed[at].tolist(),
                    state.last[at].tolist(),
                    state.ref[at].tolist(),
                    strict=True,
                ):
                    key = orjson.dumps([name, state.name, self._tickers[i]])
                    fields[key] = orjson.dumps([armed, last if last > -math.inf else None, None if ref != ref else ref])
        if fields:
            pipe.hset(self.state_key, mapping=fields)
            written += len(fields)
        at = np.flatnonzero(~np.isnan(self._prediction[:count]) if full else self._latest_dirty[:count])
        self._latest_dirty[:count] = False
        if len(at):
            latest = {
                self._tickers[i]: orjson.dumps([p, self._as_of[i], self._model_version[i]])
                for i, p in zip(at.tolist(), self._prediction[at].tolist(), strict=True)
            }
            pipe.hset(f"{self.state_key}:latest", mapping=latest)
            written += len(latest)
        return written

    def load_state(self, client: redis.Redis) -> None:
        """Read back what `state_writes` wrote (call it once, before the first batch); a malformed field is logged
        and skipped, a field of a rule no longer subscribed ignored."""
        for ticker, value in client.hgetall(f"{self.state_key}:latest").items():
            try:
                prediction, as_of, model_version = orjson.loads(value)
                i = self._ticker_index(ticker.decode())
                self._prediction[i] = np.nan if prediction is None else float(prediction)
                self._as_of[i], self._model_version[i] = as_of, model_version
            except (ValueError, TypeError) as exc:
                logger.warning("skipping the alert state field %r of %s:latest: %s", ticker, self.state_key, exc)
        rules = {(s.subscription.subscriber, r.name): r for s in self._subscribers for r in s.rules}
        for field, value in client.hgetall(self.state_key).items():
            try:
                subscriber, rule, ticker = orjson.loads(field)
                armed, last, ref = orjson.loads(value)
                state = rules.get((subscriber, rule))
                if state is None:
                    continue
                i = self._ticker_index(ticker)
                state.armed[i] = bool(armed)
                state.last[i] = -np.inf if last is None else float(last)
                state.ref[i] = np.nan if ref is None else float(ref)
            except (ValueError, TypeError) as exc:
                logger.warning("skipping the alert state field %r of %s: %s", field, self.state_key, exc)


class _Batch:
    """A batch's unique tickers (indices) and their answers' numbers; `valid`: a prediction is there."""

    __slots__ = ("high", "idx", "low", "valid", "value")

    def __init__(self, idx: np.ndarray, value: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
        self.idx, self.value, self.low, self.high = idx, value, low, high
        self.valid = ~np.isnan(value)


def publish_alerts(pipe: redis.client.Pipeline | redis.Redis, alerts: Iterable[Mapping]) -> int:
    """XADD each alert to the events stream (on the batch's pipeline: with its other writes); how many."""
    n = 0
    for alert in alerts:
        add_alert(pipe, alert)
        n += 1
    return n


class Alerts:
    """The worker's alerting: the subscriptions of a file and of the Redis hash (a subscriber in both: Redis wins,
    as the later edit), the engine and its state, written with each batch."""

    def __init__(
        self,
        client: redis.Redis,
        engine: AlertEngine,
        from_file: Sequence[Subscription] = (),
        from_redis: RedisSubscriptions | None = None,
    ) -> None:
        self.client, self.engine, self.from_file, self.from_redis = client, engine, list(from_file), from_redis
        self._full = True  # the first write rewrites the whole state

    @classmethod
    def configured(cls, client: redis.Redis, path: str | Path | None = None) -> Alerts:
        """The file's subscriptions (if any) and the Redis hash's, with the state a previous worker left."""
        from_file = load_subscriptions(path) if path else []
        engine = AlertEngine(from_file)
        alerts = cls(client, engine, from_file, RedisSubscriptions(client))
        alerts.poll()
        engine.load_state(client)
        return alerts

    def poll(self) -> None:
        found = self.from_redis.poll() if self.from_redis is not None else None
        if found is not None:
            merged = {s.subscriber: s for s in self.from_file}
            merged.update({s.subscriber: s for s in found})
            self.engine.set_subscriptions(merged.values())

    def evaluate(self, answers: Sequence[Mapping | bytes]) -> list[dict]:
        self.poll()
        return self.engine.evaluate(answers)

    def write(self, pipe: redis.client.Pipeline, alerts: Sequence[Mapping]) -> None:
        """Queue the alerts (events stream) and the changed state on the batch's pipeline."""
        publish_alerts(pipe, alerts)
        self.engine.state_writes(pipe, full=self._full)
        self._full = False

    def failed(self) -> None:
        """The batch's pipeline did not run: the next write rewrites the whole state."""
        self._full = True
