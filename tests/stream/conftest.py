"""What the stream tests share: a client of the session's redis-server and key prefixes of one test only."""

import uuid

import pytest
import redis


@pytest.fixture
def client(redis_url) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def prefix() -> str:
    """Keys of one test only: the session's Redis is shared."""
    return f"test-{uuid.uuid4().hex[:8]}"
