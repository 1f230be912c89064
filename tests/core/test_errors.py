"""The error tree: stable codes, statuses and problem rendering."""

from __future__ import annotations

import json
import re

import pytest

from gateway.core.states import InvalidTransition, MessageState
from gateway.errors import (
    GatewayError,
    RejectedMessage,
    SettingsError,
    TemporaryFailure,
    all_error_classes,
)

CLASSES = [c for c in all_error_classes() if c is not SettingsError]


def test_codes_are_unique_kebab_case() -> None:
    """Every error class has its own kebab-case code."""
    codes = [c.code for c in all_error_classes()]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert all(re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", code) for code in codes)


def _example(cls: type[GatewayError]) -> GatewayError:
    if issubclass(cls, InvalidTransition):
        return cls(MessageState.REJECTED, MessageState.QUEUED)
    return cls("something specific went wrong")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.code)
def test_every_error_renders_a_problem(cls: type[GatewayError]) -> None:
    """Each error renders to JSON problem details carrying its code and status."""
    problem = _example(cls).to_problem(base_uri="https://x/p/", instance="/i")
    assert problem["type"] == f"https://x/p/{cls.code}"
    assert problem["status"] == cls.http_status
    assert problem["code"] == cls.code
    json.dumps(problem)


def test_sender_faults_are_4xx_and_never_retryable() -> None:
    """Every RejectedMessage answers 4xx and is not retryable."""
    for cls in all_error_classes():
        if issubclass(cls, RejectedMessage):
            assert 400 <= cls.http_status < 500 and not cls.retryable, cls
        if issubclass(cls, TemporaryFailure):
            assert cls.http_status >= 500 and cls.retryable, cls
