"""Fixtures shared by the integration tests."""

from tests.integration.nsw_pair import nsw_pair

__all__ = ["nsw_pair"]
