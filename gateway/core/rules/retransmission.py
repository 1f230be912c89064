"""Rules for the re-transmission request (OCP Rule 29(3)).

The header rules already require a ReferencedMessageID (``reference-missing``) and a sender
that is not the receiver. Whether the sender may ask for that message at all (it must be the
message's receiver, the request must go to its sender) needs the journal and is decided at
submission (``gateway.core.retransmission``), not here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Final

from lxml import etree

from gateway.core.envelope import NS_RETRANSMISSION
from gateway.core.rules.common import clark_path, future_datetime
from gateway.errors import Finding

_REQUEST: Final = clark_path(NS_RETRANSMISSION, "Request")
_ISSUED: Final = clark_path(NS_RETRANSMISSION, "IssueDateTime")


def retransmission_rules(root: etree._Element, now: datetime) -> Iterator[Finding]:
    """Every re-transmission request rule over an XSD-valid ``root``."""
    request = root.find(_REQUEST)
    assert request is not None  # noqa: S101
    yield from future_datetime(request.find(_ISSUED), "request date-time", now)
