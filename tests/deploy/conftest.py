"""Fixtures of the deploy/ tests: each kustomize overlay, and the objects it renders."""

import pytest
from k8s_manifests import OVERLAYS, render


@pytest.fixture(params=sorted(OVERLAYS))
def overlay(request) -> str:
    return request.param


@pytest.fixture
def docs(overlay) -> tuple[dict, ...]:
    return render(f"overlays/{overlay}")
