"""Reading the message header."""

from __future__ import annotations

import pytest

from gateway.core.envelope import DocumentType, FunctionCode, read_envelope
from gateway.core.parsing import parse
from gateway.errors import HeaderInvalid, UnknownDocumentType
from tests.conftest import SAMPLE_FORMD


def _sample(replace: tuple[bytes, bytes] | None = None) -> bytes:
    data = SAMPLE_FORMD.read_bytes()
    if replace:
        assert replace[0] in data
        data = data.replace(*replace)
    return data


def test_reads_routing_fields_from_the_sample() -> None:
    """The sample's header gives sender SG, receiver TH, Form D, original."""
    envelope = read_envelope(parse(_sample()))
    assert envelope.sender.country == "SG"
    assert envelope.receiver.country == "TH"
    assert envelope.document_type is DocumentType.FORM_D
    assert envelope.function is FunctionCode.ORIGINAL
    assert envelope.message_id == "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
    assert envelope.created.utcoffset() is not None
    assert envelope.test is False


def test_unknown_root_is_refused() -> None:
    """A root element outside the known document types is unknown-document-type."""
    with pytest.raises(UnknownDocumentType):
        read_envelope(parse(b"<Invoice xmlns='urn:x'/>"))


def test_message_id_must_be_a_uuid() -> None:
    """A message id that is not a UUID is header-invalid."""
    data = _sample((b"6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f", b"not-a-uuid"))
    with pytest.raises(HeaderInvalid, match="not a UUID"):
        read_envelope(parse(data))


def test_declared_type_must_match_the_root() -> None:
    """A Form D whose header claims ACDD is header-invalid."""
    data = _sample((b"<cm:DocumentTypeCode>EFD<", b"<cm:DocumentTypeCode>ACDD<"))
    with pytest.raises(HeaderInvalid, match="document type"):
        read_envelope(parse(data))


def test_unknown_function_code_is_refused() -> None:
    """Function code 4 (change) is not one the gateway exchanges."""
    data = _sample((b"<cm:FunctionCode>9<", b"<cm:FunctionCode>4<"))
    with pytest.raises(HeaderInvalid, match="function code"):
        read_envelope(parse(data))


def test_missing_receiver_is_refused() -> None:
    """A header without ReceiverParty is header-invalid."""
    data = _sample(
        (b"<cm:ReceiverParty><cm:CountryCode>TH</cm:CountryCode></cm:ReceiverParty>", b"")
    )
    with pytest.raises(HeaderInvalid, match="receiver"):
        read_envelope(parse(data))


def test_header_value_is_read_in_full_around_a_child_element() -> None:
    """A receiver written T<x/>H reads as TH, as the XSD and the receiver read it, not T."""
    data = _sample(
        (b"<cm:ReceiverParty><cm:CountryCode>TH<", b"<cm:ReceiverParty><cm:CountryCode>T<x/>H<")
    )
    assert read_envelope(parse(data)).receiver.country == "TH"


def test_referenced_message_id_is_lower_cased() -> None:
    """A reference written in capitals names the same journalled (lower-case) message id."""
    reference = "6F1C2D3E-4A5B-4C6D-8E7F-0A1B2C3D4E5F"
    data = _sample(
        (
            b"</cm:CreationDateTime>",
            f"</cm:CreationDateTime><cm:ReferencedMessageID>{reference}"
            "</cm:ReferencedMessageID>".encode(),
        )
    )
    assert read_envelope(parse(data)).referenced_message_id == reference.lower()
