"""What the service tests share beyond tests/support: a local OAuth2 token issuer per test module."""

import pytest

from bento.harness.issuer import Issuer


@pytest.fixture(scope="module")
def issuer():
    """Keys generated for the module, the JWKS served over HTTP on a free port (`bento.harness.issuer`)."""
    with Issuer() as running:
        yield running
