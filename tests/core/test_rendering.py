"""Documents rendered as JSON by their own schema: plain keys, schema-shaped lists, exact values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.core.envelope import DocumentType, document_type_of
from gateway.core.parsing import ParseLimits, parse
from gateway.core.signatures import sign
from gateway.core.validation import Validator

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
XSD_DIR = ROOT / "xsd"
BASIC = SAMPLES / "formd" / "valid" / "sg-th-basic.xml"
ROOT_NAMES = {
    DocumentType.FORM_D: "EFormD",
    DocumentType.ACDD: "ACDD",
    DocumentType.CUSTOMS_RESPONSE: "CustomsResponse",
    DocumentType.DELIVERY_RECEIPT: "DeliveryReceipt",
    DocumentType.RETRANSMISSION_REQUEST: "RetransmissionRequest",
    DocumentType.REJECTION_NOTICE: "RejectionNotice",
    DocumentType.CLARIFICATION: "Clarification",
    DocumentType.RETRO_CHECK_REQUEST: "RetroactiveCheckRequest",
    DocumentType.RETRO_CHECK_REPLY: "RetroactiveCheckReply",
    DocumentType.ORIGIN_DETERMINATION: "OriginDetermination",
    DocumentType.VISIT_REQUEST: "VerificationVisitRequest",
    DocumentType.VISIT_CONSENT: "VerificationVisitConsent",
    DocumentType.VISIT_RESULT: "VerificationVisitResult",
    DocumentType.CE_REGISTER_UPDATE: "CertifiedExporterRegisterUpdate",
    DocumentType.ORIGIN_DECLARATION: "OriginDeclaration",
    DocumentType.AEO_STATUS: "AEOStatusNotification",
    DocumentType.CE_LOOKUP_REQUEST: "CertifiedExporterLookupRequest",
    DocumentType.CE_LOOKUP_RESPONSE: "CertifiedExporterLookupResponse",
    DocumentType.AEO_STATUS_QUERY: "AEOStatusQuery",
    DocumentType.AEO_STATUS_RESPONSE: "AEOStatusResponse",
}
VALID = sorted(
    p.relative_to(SAMPLES).as_posix()
    for p in SAMPLES.glob("*/valid/*.xml")
    if p.stat().st_size < 100_000
)


@pytest.fixture(name="validator", scope="module")
def _validator() -> Validator:
    return Validator.load(XSD_DIR)


def _render(validator: Validator, data: bytes) -> dict[str, Any]:
    document = validator.render(parse(data))
    assert document is not None
    return document


def _items(document: dict[str, Any]) -> list[dict[str, Any]]:
    items = document["EFormD"]["Declaration"]["GoodsShipment"]["GovernmentAgencyGoodsItem"]
    assert isinstance(items, list)
    return items


def test_every_document_type_has_a_valid_sample_to_render() -> None:
    """The valid samples cover the Form D, ACDD, response and receipt."""
    types = {document_type_of(parse((SAMPLES / name).read_bytes())) for name in VALID}
    assert types == set(DocumentType)


@pytest.mark.parametrize("name", VALID)
def test_each_valid_sample_renders_as_json_under_its_root_name(
    validator: Validator, name: str
) -> None:
    """Each valid sample renders to JSON keyed by its root, with its message id, no prefixes."""
    root = parse((SAMPLES / name).read_bytes())
    document = _render(validator, (SAMPLES / name).read_bytes())
    (root_name,) = document
    assert root_name == ROOT_NAMES[document_type_of(root)]
    text = json.dumps(document)
    header = document[root_name]["MessageHeader"]
    assert header["MessageID"] == root.findtext("{*}MessageHeader/{*}MessageID")
    assert '"fd:' not in text and '"cm:' not in text and "urn:" not in text


def test_form_d_values_keep_their_exact_text_and_attributes(validator: Validator) -> None:
    """Amounts stay exact strings, attributes are @name, text beside attributes is $."""
    items = _items(_render(validator, BASIC.read_bytes()))
    measure = items[0]["Commodity"]["GoodsMeasure"]["GrossMassMeasure"]
    assert measure == {"@unitCode": "KGM", "$": "486.5"}
    flags = _render(validator, BASIC.read_bytes())["EFormD"]["Declaration"]["CertificateFlags"]
    assert flags["ExhibitionIndicator"] is False


def test_repeatable_elements_are_lists_even_with_one_entry(validator: Validator) -> None:
    """A Form D cut to one goods item still has a list of goods items (the schema's shape)."""
    data = BASIC.read_bytes()
    start = data.index(
        b"<fd:GovernmentAgencyGoodsItem>", data.index(b"</fd:GovernmentAgencyGoodsItem>")
    )
    end = data.rindex(b"</fd:GovernmentAgencyGoodsItem>") + len(b"</fd:GovernmentAgencyGoodsItem>")
    one_item = data[:start] + data[end:]
    assert len(_items(_render(validator, data))) == 2
    assert len(_items(_render(validator, one_item))) == 1


def test_the_signature_is_left_out_and_the_callers_tree_kept(
    validator: Validator, rsa_pki: PkiBundle
) -> None:
    """A signed document renders without ds:Signature; the tree passed in still has it."""
    signed = sign(parse(BASIC.read_bytes()), rsa_pki.key("SG"))
    document = validator.render(signed)
    assert document is not None
    assert "Signature" not in json.dumps(document)
    assert signed[-1].tag.endswith("}Signature")
    assert document == _render(validator, BASIC.read_bytes())


def test_a_document_its_schema_now_refuses_still_renders(validator: Validator) -> None:
    """A stored document with a code no longer on its list renders value for value."""
    data = BASIC.read_bytes().replace(b"<fd:TypeCode>CT", b"<fd:TypeCode>PLT", 1)
    assert not validator.check(parse(data), now=datetime(2026, 12, 1, tzinfo=UTC)).schema_valid
    items = _items(_render(validator, data))
    assert items[0]["Packaging"]["TypeCode"] == "PLT"


def test_the_1_mb_form_d_renders_every_goods_item(validator: Validator) -> None:
    """The ~1 MB sample renders with all of its goods items."""
    data = (SAMPLES / "formd/valid/sg-vn-large-1mb.xml").read_bytes()
    root = parse(data, ParseLimits(max_bytes=8 * 1024 * 1024))
    document = validator.render(root)
    assert document is not None
    assert len(_items(document)) == data.count(b"<fd:GovernmentAgencyGoodsItem>")


def test_a_type_without_a_schema_renders_as_none(tmp_path: Path) -> None:
    """With no Form D schema installed, render() answers None instead of guessing."""
    validator = Validator.load(tmp_path)
    assert validator.render(parse(BASIC.read_bytes())) is None
