"""Build e-Form D documents from plain data, for the sample generator (not used at run time)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

NS = {
    "fd": "urn:asw-gw:datamodel:EFORMD-DMS:1",
    "fdx": "urn:asw-gw:datamodel:EFORMD-EXT:1",
    "cm": "urn:asw-gw:datamodel:Common_DS:1",
}
FLAG_NAMES = (
    "ThirdCountryInvoicing",
    "Exhibition",
    "Accumulation",
    "DeMinimis",
    "BackToBack",
    "IssuedRetroactively",
    "PartialCumulation",
)


def q(name: str) -> str:
    """Clark name of ``prefix:Local``."""
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


def sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    """Append a child element ``prefix:Local`` with optional text and attributes."""
    el = etree.SubElement(parent, q(name), attrs)
    if text is not None:
        el.text = text
    return el


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """A party with a postal address."""

    name: str
    line: str
    city: str
    country: str
    postcode: str | None = None
    party_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One goods item (boxes 5 to 9)."""

    marks: str
    packages: int
    package_type: str
    description: str
    hs: str
    gross_kg: str
    quantity: str
    unit: str
    origin: str
    criterion: str
    fob: tuple[str, str] | None = None  # (amount, currency)


@dataclass(frozen=True, slots=True, kw_only=True)
class FormD:
    """Everything a Form D sample needs."""

    message_id: str
    sender: str
    receiver: str
    created: str
    reference_no: str
    issue_date: str
    issue_place: str
    authority: str
    exporter: Party
    consignee: Party
    signatory: str
    declaration_place: str
    declaration_date: str
    invoices: tuple[tuple[str, str], ...]
    items: tuple[Item, ...]
    function: str = "9"
    referenced: str | None = None
    departure: str | None = None
    mode: str = "1"
    vessel: str | None = None
    loading: str | None = None
    unloading: tuple[str, str] | None = None
    flags: frozenset[str] = field(default_factory=frozenset)
    originals: tuple[tuple[str, str, str], ...] = ()
    invoicing: tuple[str, str] | None = None
    exhibition: Party | None = None


def _address(parent: etree._Element, name: str, party: Party) -> None:
    address = sub(parent, name)
    sub(address, "cm:Line", party.line)
    sub(address, "cm:CityName", party.city)
    if party.postcode:
        sub(address, "cm:PostcodeID", party.postcode)
    sub(address, "cm:CountryCode", party.country)


def _party(parent: etree._Element, name: str, party: Party) -> None:
    el = sub(parent, name)
    sub(el, "cm:Name", party.name)
    if party.party_id:
        sub(el, "cm:ID", party.party_id)
    _address(el, "cm:Address", party)


def header(root: etree._Element, doc: str, d: FormD) -> None:
    """The common message header."""
    h = sub(root, "cm:MessageHeader")
    sub(h, "cm:MessageID", d.message_id)
    sub(sub(h, "cm:SenderParty"), "cm:CountryCode", d.sender)
    sub(sub(h, "cm:ReceiverParty"), "cm:CountryCode", d.receiver)
    sub(h, "cm:DocumentTypeCode", doc)
    sub(h, "cm:FunctionCode", d.function)
    sub(h, "cm:CreationDateTime", d.created)
    if d.referenced:
        sub(h, "cm:ReferencedMessageID", d.referenced)


def _item(parent: etree._Element, seq: int, it: Item) -> None:
    el = sub(parent, "fd:GovernmentAgencyGoodsItem")
    sub(el, "fd:SequenceNumeric", str(seq))
    packaging = sub(el, "fd:Packaging")
    sub(packaging, "fd:MarksNumbersID", it.marks)
    sub(packaging, "fd:QuantityQuantity", str(it.packages))
    sub(packaging, "fd:TypeCode", it.package_type)
    commodity = sub(el, "fd:Commodity")
    sub(commodity, "fd:Description", it.description)
    sub(sub(commodity, "fd:Classification"), "fd:ID", it.hs)
    measure = sub(commodity, "fd:GoodsMeasure")
    sub(measure, "fd:GrossMassMeasure", it.gross_kg, unitCode="KGM")
    sub(measure, "fd:TariffQuantity", it.quantity, unitCode=it.unit)
    origin = sub(el, "fd:Origin")
    sub(origin, "fd:CountryCode", it.origin)
    sub(origin, "fdx:OriginCriterionCode", it.criterion)
    if it.fob:
        sub(el, "fdx:FOBValueAmount", it.fob[0], currencyID=it.fob[1])


def build(d: FormD) -> etree._Element:
    """The e-Form D document for ``d``."""
    root = etree.Element(q("fd:EFormD"), nsmap=NS)
    header(root, "EFD", d)
    decl = sub(root, "fd:Declaration")
    sub(decl, "fd:ID", d.reference_no)
    sub(decl, "fd:IssueDateTime", d.issue_date)
    sub(decl, "fd:IssueLocationID", d.issue_place)
    sub(sub(decl, "fdx:IssuingAuthority"), "fdx:Name", d.authority)
    _party(decl, "fd:Exporter", d.exporter)
    auth = sub(decl, "fd:Authentication")
    sub(sub(auth, "fd:Authenticator"), "fd:Name", d.signatory)
    sub(auth, "fdx:DeclarationPlaceName", d.declaration_place)
    sub(auth, "fdx:DeclarationDate", d.declaration_date)
    flags = sub(decl, "fdx:CertificateFlags")
    for name in FLAG_NAMES:
        sub(flags, f"fdx:{name}Indicator", "true" if name in d.flags else "false")
    for ref, issued, country in d.originals:
        original = sub(decl, "fdx:BackToBackOriginalReference")
        sub(original, "fdx:ID", ref)
        sub(original, "fdx:IssueDate", issued)
        sub(original, "fdx:IssuingCountryCode", country)
    if d.invoicing:
        invoicing = sub(decl, "fdx:ThirdCountryInvoicingParty")
        sub(invoicing, "fdx:Name", d.invoicing[0])
        sub(invoicing, "fdx:CountryCode", d.invoicing[1])
    if d.exhibition:
        exhibition = sub(decl, "fdx:Exhibition")
        sub(exhibition, "fdx:Name", d.exhibition.name)
        _address(exhibition, "fdx:Address", d.exhibition)
    shipment = sub(decl, "fd:GoodsShipment")
    _party(shipment, "fd:Consignee", d.consignee)
    sub(sub(shipment, "fd:ExportCountry"), "fd:ID", d.sender)
    sub(sub(shipment, "fd:Destination"), "fd:CountryCode", d.receiver)
    consignment = sub(shipment, "fd:Consignment")
    if d.departure:
        sub(consignment, "fdx:DepartureDate", d.departure)
    means = sub(consignment, "fd:BorderTransportMeans")
    sub(means, "fd:ModeCode", d.mode)
    if d.vessel:
        sub(means, "fd:Name", d.vessel)
    if d.loading:
        sub(sub(consignment, "fd:LoadingLocation"), "fd:ID", d.loading)
    if d.unloading:
        unloading = sub(consignment, "fd:UnloadingLocation")
        sub(unloading, "fd:ID", d.unloading[0])
        sub(unloading, "fd:Name", d.unloading[1])
    for number, issued in d.invoices:
        invoice = sub(shipment, "fd:Invoice")
        sub(invoice, "fd:ID", number)
        sub(invoice, "fd:IssueDateTime", issued)
    for seq, it in enumerate(d.items, start=1):
        _item(shipment, seq, it)
    return root


def serialise(root: etree._Element) -> bytes:
    """Pretty-printed UTF-8 with an XML declaration."""
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"
