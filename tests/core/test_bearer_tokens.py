"""The bearer-token verifier (`stockpred_core.auth`) against a real local issuer, with its clocks under the test's
control: the JWKS cache's lifetime and refresh bound, an issuer that goes away, the verified-token cache."""

import time

import pytest

from bento.harness.issuer import Issuer
from stockpred_core.auth import JwksCache, JwtConfig, JwtVerifier, TokenError, role_of, token_scopes
from stockpred_core.settings import load_settings


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer():
    with Issuer() as running:
        yield running


def verifier(issuer: Issuer, clock: Clock, **config) -> JwtVerifier:
    settings = JwtConfig(issuer.issuer, "stockpred", issuer.jwks_url, **config)
    return JwtVerifier(settings, JwksCache(settings, clock=clock))


def test_keys_are_cached_then_fetched_again_after_their_lifetime(issuer):
    clock = Clock()
    check = verifier(issuer, clock, cache_seconds=300)
    for _ in range(3):
        check.verify(issuer.token(subject="a", jti=None, lifetime=300 + _))
    assert issuer.requests == 1
    clock.now += 301
    check.verify(issuer.token(subject="b"))
    assert issuer.requests == 2


def test_an_issuer_that_goes_away_leaves_the_held_keys_in_use(issuer):
    clock = Clock()
    check = verifier(issuer, clock, cache_seconds=10, min_refresh_seconds=1)
    check.verify(issuer.token())
    issuer.stop()
    clock.now += 60
    assert check.verify(issuer.token(subject="still")).subject == "still"  # the fetch failed; the key is held
    assert "the issuer's keys cannot be fetched" in check.jwks.error and issuer.jwks_url not in check.jwks.error
    with pytest.raises(TokenError, match=r"unknown signing key 'nope'.*cannot be fetched"):
        check.verify(issuer.token(header={"kid": "nope"}))


def test_unknown_kids_fetch_at_most_once_per_interval(issuer):
    clock = Clock()
    check = verifier(issuer, clock, min_refresh_seconds=10)
    check.verify(issuer.token())
    for i in range(100):
        clock.now += 0.05
        with pytest.raises(TokenError, match="unknown signing key"):
            check.verify(issuer.token(header={"kid": f"k{i}"}))
    assert issuer.requests == 1  # 5 s of unknown kids: all within the first interval
    clock.now += 10
    issuer.rotate()
    assert check.verify(issuer.token()).role == "reader" and issuer.requests == 2


def test_a_remembered_token_still_expires(issuer):
    wall = Clock(time.time())
    check = verifier(issuer, Clock(), leeway_seconds=0)
    check.now = wall
    token = issuer.token(lifetime=2)
    assert check.verify(token).subject == "alice" and check.verify(token).subject == "alice"
    wall.now += 10
    with pytest.raises(TokenError, match="expired"):
        check.verify(token)


def test_without_fetching_an_unknown_kid_is_refused_with_no_io(issuer):
    """What the service's event loop calls: the held keys only; the fetch is `prefetch`'s, in a thread."""
    check = verifier(issuer, Clock())
    token = issuer.token()
    assert check.needs_keys(token)
    with pytest.raises(TokenError, match="unknown signing key"):
        check.verify(token, fetch=False)
    assert issuer.requests == 0
    check.prefetch(token)
    assert check.verify(token, fetch=False).subject == "alice" and issuer.requests == 1
    assert not check.needs_keys(token)


def test_symmetric_algorithms_and_plain_http_cannot_be_configured():
    with pytest.raises(ValueError, match="asymmetric"):
        JwtConfig("https://idp", "stockpred", "https://idp/jwks", algorithms=("RS256", "HS256"))
    with pytest.raises(ValueError, match="must be https"):
        JwtConfig("https://idp", "stockpred", "http://idp.example.com/jwks")
    with pytest.raises(ValueError, match="STOCKPRED_JWT_JWKS_URL"):
        load_settings({"STOCKPRED_JWT_ISSUER": "https://idp"}).service.jwt_config()


def test_scopes_and_roles():
    assert token_scopes({"scope": "openid stockpred.predict", "scp": ["stockpred.admin"]}) == {
        "openid",
        "stockpred.predict",
        "stockpred.admin",
    }
    roles = (("reader", ("stockpred.predict",)), ("admin", ("stockpred.admin",)))
    assert role_of(frozenset({"stockpred.admin", "stockpred.predict"}), roles) == "admin"
    assert role_of(frozenset({"openid"}), roles) is None
    env = {"STOCKPRED_JWT_ISSUER": "https://idp", "STOCKPRED_JWT_JWKS_URL": "https://idp/k"}
    config = load_settings({**env, "STOCKPRED_JWT_ADMIN_SCOPES": "ops, root"}).service.jwt_config()
    assert config.role_scopes == (("reader", ("stockpred.predict",)), ("admin", ("ops", "root")))
