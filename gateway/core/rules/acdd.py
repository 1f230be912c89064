"""ACDD rules: the exporting and importing country, and the declaration's date-time.

ACDD findings carry no box: the rules shared with the Form D drop theirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Final

from lxml import etree

from gateway.core.envelope import NS_ACDD
from gateway.core.envelope import first_child as child
from gateway.core.rules.common import (
    Header,
    acdd_code_list_rules,
    clark_path,
    country_rules,
    future_datetime,
    text,
)
from gateway.errors import Finding

_SHIPMENT: Final = clark_path(NS_ACDD, "Declaration/GoodsShipment")
_EXPORT_COUNTRY: Final = clark_path(NS_ACDD, "ExportCountry")
_EXPORT_ID: Final = clark_path(NS_ACDD, "ID")
_DESTINATION: Final = clark_path(NS_ACDD, "Destination")
_DESTINATION_COUNTRY: Final = clark_path(NS_ACDD, "CountryCode")
_ISSUED: Final = clark_path(NS_ACDD, "Declaration/IssueDateTime")


def acdd_rules(root: etree._Element, h: Header, now: datetime) -> Iterator[Finding]:
    """Every ACDD rule over an XSD-valid ``root`` whose header is ``h``."""
    shipment = root.find(_SHIPMENT)
    exporting = child(child(shipment, _EXPORT_COUNTRY), _EXPORT_ID)
    importing = child(child(shipment, _DESTINATION), _DESTINATION_COUNTRY)
    yield from country_rules(h, exporting, importing, boxed=False)
    issued = root.find(_ISSUED)
    yield from future_datetime(issued, "declaration date-time", now)
    yield from acdd_code_list_rules(
        shipment, h, issued=issued, exporting=text(exporting), importing=text(importing)
    )
