"""Helpers the tests share (not tests themselves): paths, environments, servers started for a test session."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
SHARED_DATA = ROOT.parent / "shared" / "data"  # the real third-party data beside the checkout (../shared/data)
