"""`stockpred-notify`: deliver the events stream's alerts to their subscribers, or show the dead letters.

    stockpred-notify run [--subscriptions FILE] [--group G] [--consumer NAME] [--from-start] [--once]
    stockpred-notify dead-letters [--count N]

Redis is STOCKPRED_REDIS_URL (or --redis-url); the channels are configured by the STOCKPRED_SMTP_*, _SLACK_*,
_TWILIO_* and _WEBHOOK_* variables (docs/configuration.md); subscriptions come from the Redis hash and the file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

import redis

from stockpred_core.alerts import RedisSubscriptions, load_subscriptions
from stockpred_core.notify.channels import channels_from_settings
from stockpred_core.notify.consumer import GROUP, DeliveryLoop, Subscribers
from stockpred_core.notify.dispatcher import DEAD_KEY, Dispatcher, read_records
from stockpred_core.redaction import redact_url
from stockpred_core.resilience.retry import RetryPolicy
from stockpred_core.settings import SettingsError, load_notify_settings, load_settings

log = logging.getLogger("stockpred.notify")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stockpred-notify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", help="default: STOCKPRED_REDIS_URL")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="deliver alerts from the events stream (a consumer group)")
    run.add_argument("--subscriptions", help="a subscriptions file (YAML/JSON) read beside the Redis hash")
    run.add_argument("--group", default=GROUP, help=f"the consumer group (default {GROUP})")
    run.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}", help="this loop's name")
    run.add_argument("--from-start", action="store_true", help="a new group starts at the stream's first entry")
    run.add_argument("--once", action="store_true", help="deliver what is waiting, then exit")
    dead = sub.add_parser("dead-letters", help="print the latest dead letters as JSON lines")
    dead.add_argument("--count", type=int, default=20)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings, notify = load_settings(), load_notify_settings()
    except SettingsError as exc:
        print(f"stockpred-notify: {exc}", file=sys.stderr)
        return 2
    url = args.redis_url or settings.redis_url
    if not url:
        print("stockpred-notify: set STOCKPRED_REDIS_URL (or --redis-url): alerts come through Redis", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(url)
    if args.command == "dead-letters":
        for record in read_records(client, DEAD_KEY, args.count):
            print(json.dumps(record))
        return 0
    channels = channels_from_settings(notify)
    retry = RetryPolicy(max_attempts=notify.notify_max_attempts, backoff_base_s=notify.notify_backoff_seconds)
    dispatcher = Dispatcher(client, channels, retry=retry)
    subscribers = Subscribers(
        load_subscriptions(args.subscriptions) if args.subscriptions else [], RedisSubscriptions(client)
    )
    loop = DeliveryLoop(client, dispatcher, subscribers, group=args.group, consumer=args.consumer)
    loop.ensure_group("0" if args.from_start else "$")
    log.info(
        "delivering alerts from %s as %s/%s through %s", redact_url(url), args.group, args.consumer, sorted(channels)
    )
    if args.once:
        while loop.run_once(block_ms=0):
            pass
        return 0
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        loop.run(stop=lambda: bool(stopping))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
