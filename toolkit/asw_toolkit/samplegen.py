"""Realistic, valid, reproducible trade documents for testing a gateway.

Two layers:

- **builders**: ``FormD`` / ``Acdd`` dataclasses and ``build`` / ``build_acdd``, which turn plain
  data into an XML document. ``samples/generate.py`` builds the committed Form D samples with
  them (``samples/formd_builder.py`` re-exports them).
- **the generator**: ``generate(kind, count=..., items=..., seed=..., invalid=...)`` makes
  documents between member states with plausible goods, HS codes, UN/LOCODE ports and
  consistent figures; ``--invalid RULE`` makes each document break exactly one rule (the
  expected finding codes are declared next to each edit; the tests check them against the
  validator). The same seed, count, item count and reference date always give the same bytes.

Used by ``asw-toolkit samples generate``; never at run time of the gateway.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

from lxml import etree

from asw_toolkit.xml_edits import (
    NAMESPACES,
    Edit,
    all_of,
    drop,
    drop_if_present,
    insert_after,
    set_attribute,
    set_text,
)

# The prefixes each document type declares on its root (a subset of the one namespace map).
NS = {prefix: NAMESPACES[prefix] for prefix in ("fd", "fdx", "cm")}
NS_ACDD = {prefix: NAMESPACES[prefix] for prefix in ("ac", "cm")}
FLAG_NAMES = (
    "ThirdCountryInvoicing",
    "Exhibition",
    "Accumulation",
    "DeMinimis",
    "BackToBack",
    "IssuedRetroactively",
    "PartialCumulation",
)


def clark_name(name: str) -> str:
    """Clark name of ``prefix:Local``."""
    prefix, local = name.split(":")
    return f"{{{NAMESPACES[prefix]}}}{local}"


def sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    """Append a child element ``prefix:Local`` with optional text and attributes."""
    el = etree.SubElement(parent, clark_name(name), attrs)
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


def header(root: etree._Element, doc: str, d: FormD | Acdd) -> None:
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
    root = etree.Element(clark_name("fd:EFormD"), nsmap=NS)
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


# --- ACDD -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AcddItem:
    """One ACDD goods item."""

    description: str
    hs: str
    gross_kg: str
    quantity: str
    unit: str
    origin: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Acdd:
    """Everything an ACDD (export declaration shared with the importing member state) needs."""

    message_id: str
    sender: str
    receiver: str
    created: str
    declaration_no: str
    issued: str
    exit_date: str
    exporter_name: str
    exporter_id: str
    declarant_name: str
    declarant_id: str
    consignee: Party
    mode: str
    vessel: str
    loading: str
    unloading: tuple[str, str]
    items: tuple[AcddItem, ...]
    function: str = "9"
    referenced: str | None = None


def build_acdd(d: Acdd) -> etree._Element:
    """The ACDD document for ``d``."""
    root = etree.Element(clark_name("ac:ACDD"), nsmap=NS_ACDD)
    header(root, "ACDD", d)
    decl = sub(root, "ac:Declaration")
    sub(decl, "ac:ID", d.declaration_no)
    sub(decl, "ac:TypeCode", "EX")
    sub(decl, "ac:IssueDateTime", d.issued)
    sub(decl, "ac:ExitDateTime", d.exit_date)
    exporter = sub(decl, "ac:Exporter")
    sub(exporter, "cm:Name", d.exporter_name)
    sub(exporter, "cm:ID", d.exporter_id)
    declarant = sub(decl, "ac:Declarant")
    sub(declarant, "cm:Name", d.declarant_name)
    sub(declarant, "cm:ID", d.declarant_id)
    shipment = sub(decl, "ac:GoodsShipment")
    consignee = sub(shipment, "ac:Consignee")
    sub(consignee, "cm:Name", d.consignee.name)
    _address(consignee, "cm:Address", d.consignee)
    sub(sub(shipment, "ac:ExportCountry"), "ac:ID", d.sender)
    sub(sub(shipment, "ac:Destination"), "ac:CountryCode", d.receiver)
    consignment = sub(shipment, "ac:Consignment")
    means = sub(consignment, "ac:BorderTransportMeans")
    sub(means, "ac:ModeCode", d.mode)
    sub(means, "ac:Name", d.vessel)
    sub(sub(consignment, "ac:LoadingLocation"), "ac:ID", d.loading)
    unloading = sub(consignment, "ac:UnloadingLocation")
    sub(unloading, "ac:ID", d.unloading[0])
    sub(unloading, "ac:Name", d.unloading[1])
    for seq, it in enumerate(d.items, start=1):
        el = sub(shipment, "ac:GovernmentAgencyGoodsItem")
        sub(el, "ac:SequenceNumeric", str(seq))
        commodity = sub(el, "ac:Commodity")
        sub(commodity, "ac:Description", it.description)
        sub(sub(commodity, "ac:Classification"), "ac:ID", it.hs)
        measure = sub(commodity, "ac:GoodsMeasure")
        sub(measure, "ac:GrossMassMeasure", it.gross_kg, unitCode="KGM")
        sub(measure, "ac:TariffQuantity", it.quantity, unitCode=it.unit)
        sub(sub(el, "ac:Origin"), "ac:CountryCode", it.origin)
    return root


# --- the generator: reference data ----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Country:
    """What the generator knows of one member state."""

    code: str
    authority: str
    utc_offset: int  # hours
    ports: tuple[tuple[str, str], ...]  # (UN/LOCODE, name)
    companies: tuple[tuple[str, str, str, str, str], ...]  # name, id, street, city, postcode
    people: tuple[str, ...]
    plate: str  # road vehicle registration pattern, # = digit


COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in (
        Country(
            code="BN",
            authority="Ministry of Finance and Economy, Brunei Darussalam",
            utc_offset=8,
            ports=(("BNMUA", "Muara"),),
            companies=(
                (
                    "Brunei Methanol Trading Sdn Bhd",
                    "RC00012345",
                    "Simpang 88, Jalan Muara",
                    "Muara",
                    "BT1728",
                ),
                (
                    "Kiulap Agro Foods Sdn Bhd",
                    "RC00045678",
                    "Unit 4, Kiulap Complex",
                    "Bandar Seri Begawan",
                    "BE1518",
                ),
            ),
            people=("Hajah Noraini binti Abdullah", "Awang Hazirul bin Ahmad"),
            plate="B# ####",
        ),
        Country(
            code="KH",
            authority="Ministry of Commerce of Cambodia",
            utc_offset=7,
            ports=(("KHKOS", "Sihanoukville"), ("KHPNH", "Phnom Penh")),
            companies=(
                (
                    "Angkor Garment Manufacturing Co., Ltd.",
                    "KH10023456",
                    "National Road 4",
                    "Phnom Penh",
                    "120902",
                ),
                (
                    "Mekong Rice Exporters Co., Ltd.",
                    "KH10078123",
                    "Street 598, Sangkat Chrang",
                    "Phnom Penh",
                    "120408",
                ),
            ),
            people=("Sok Chanthou, Export Manager", "Chea Vannak, Director"),
            plate="2A-####",
        ),
        Country(
            code="ID",
            authority="Ministry of Trade of the Republic of Indonesia",
            utc_offset=7,
            ports=(("IDTPP", "Tanjung Priok"), ("IDSUB", "Surabaya")),
            companies=(
                (
                    "PT Nusantara Rubber Industries",
                    "0123456789012",
                    "Jl. Raya Cakung Cilincing",
                    "Jakarta",
                    "14130",
                ),
                (
                    "PT Java Coffee Estates",
                    "0987654321098",
                    "Jl. Rungkut Industri III",
                    "Surabaya",
                    "60293",
                ),
            ),
            people=("Siti Rahmawati, Export Manager", "Budi Santoso, Director"),
            plate="B #### TX",
        ),
        Country(
            code="LA",
            authority="Ministry of Industry and Commerce, Lao PDR",
            utc_offset=7,
            ports=(("LAVTE", "Vientiane"),),
            companies=(
                (
                    "Lao Coffee Plateau Co., Ltd.",
                    "LA01234567",
                    "Ban Phonthan, Saysettha",
                    "Vientiane",
                    "01000",
                ),
                (
                    "Vientiane Wood Products Co., Ltd.",
                    "LA07654321",
                    "Thadeua Road, Km 8",
                    "Vientiane",
                    "01160",
                ),
            ),
            people=("Phouvong Sisavath, Sales Manager", "Khamla Vongsa, Director"),
            plate="KT ####",
        ),
        Country(
            code="MY",
            authority="Ministry of Investment, Trade and Industry (MITI)",
            utc_offset=8,
            ports=(("MYPKG", "Port Klang"), ("MYPEN", "Penang"), ("MYTPP", "Tanjung Pelepas")),
            companies=(
                (
                    "Klang Valley Oleochemicals Sdn Bhd",
                    "199701023456",
                    "Lot 5, Jalan Perigi Nanas",
                    "Pulau Indah",
                    "42920",
                ),
                (
                    "Penang Precision Engineering Sdn Bhd",
                    "200401012345",
                    "Plot 87, Bayan Lepas FIZ Phase 4",
                    "Bayan Lepas",
                    "11900",
                ),
            ),
            people=("Nurul Aina binti Hassan, Export Executive", "Lim Chee Keong, Director"),
            plate="W## ####",
        ),
        Country(
            code="MM",
            authority="Ministry of Commerce, Myanmar",
            utc_offset=7,
            ports=(("MMRGN", "Yangon"),),
            companies=(
                (
                    "Golden Delta Beans Trading Co., Ltd.",
                    "MM11223344",
                    "No. 45, Strand Road",
                    "Yangon",
                    "11181",
                ),
                (
                    "Ayeyarwady Garments Co., Ltd.",
                    "MM55667788",
                    "Shwe Lin Ban Industrial Zone",
                    "Yangon",
                    "11401",
                ),
            ),
            people=("Daw Khin Myo Aye, Export Manager", "U Aung Kyaw Moe, Director"),
            plate="YGN-####",
        ),
        Country(
            code="PH",
            authority="Bureau of Customs, Philippines",
            utc_offset=8,
            ports=(("PHMNL", "Manila"), ("PHCEB", "Cebu")),
            companies=(
                (
                    "Cebu Coconut Products Corporation",
                    "PH0012345678",
                    "Mandaue Reclamation Area",
                    "Mandaue City",
                    "6014",
                ),
                (
                    "Luzon Electronics Assembly Inc.",
                    "PH0087654321",
                    "Laguna Technopark",
                    "Binan",
                    "4024",
                ),
            ),
            people=("Maria Santos, Export Manager", "Jose Reyes, Director"),
            plate="NAB ####",
        ),
        Country(
            code="SG",
            authority="Singapore Customs",
            utc_offset=8,
            ports=(("SGSIN", "Singapore"),),
            companies=(
                (
                    "Lion City Precision Components Pte Ltd",
                    "201912345K",
                    "21 Tuas South Avenue 7",
                    "Singapore",
                    "637601",
                ),
                (
                    "Straits Industrial Distribution Pte Ltd",
                    "200812345W",
                    "10 Pioneer Sector 1",
                    "Singapore",
                    "628420",
                ),
            ),
            people=("Tan Wei Ming, Export Manager", "Goh Mei Ling, Trade Compliance Lead"),
            plate="XD ####",
        ),
        Country(
            code="TH",
            authority="Department of Foreign Trade, Thailand",
            utc_offset=7,
            ports=(("THLCH", "Laem Chabang"), ("THBKK", "Bangkok")),
            companies=(
                (
                    "Siam Motor Parts Co., Ltd.",
                    "0105548012345",
                    "99 Moo 4, Bangna-Trad Road",
                    "Samut Prakan",
                    "10540",
                ),
                (
                    "Chonburi Rubber Latex Co., Ltd.",
                    "0205551023456",
                    "88 Moo 2, Sukhumvit Road",
                    "Chonburi",
                    "20230",
                ),
            ),
            people=("Somchai Prasert, Export Manager", "Nattaya Wong, Director"),
            plate="##-####",
        ),
        Country(
            code="VN",
            authority="Ministry of Industry and Trade of Viet Nam",
            utc_offset=7,
            ports=(("VNSGN", "Ho Chi Minh City"), ("VNHPH", "Hai Phong")),
            companies=(
                (
                    "Hai Phong Cable and Wire JSC",
                    "0200123456",
                    "Km 9, Nguyen Binh Khiem Street",
                    "Hai Phong",
                    "180000",
                ),
                (
                    "Saigon Seafood Processing JSC",
                    "0301234567",
                    "Lot 18, Tan Thuan EPZ",
                    "Ho Chi Minh City",
                    "700000",
                ),
            ),
            people=("Nguyen Thi Lan, Sales Director", "Tran Van Minh, Export Manager"),
            plate="##C-###.##",
        ),
    )
}

# Neighbours that trade by road as well as by sea.
LAND_BORDERS = frozenset(
    frozenset(pair)
    for pair in (
        ("TH", "MY"), ("TH", "LA"), ("TH", "KH"), ("TH", "MM"), ("VN", "LA"), ("VN", "KH"),
        ("LA", "KH"), ("MY", "SG"), ("MY", "BN"),
    )
)  # fmt: skip

# (description, HS code, package type, kg per package, units per package, unit,
#  origin criterion, FOB USD per package)
PRODUCTS: tuple[tuple[str, str, str, float, int, str, str, float], ...] = (
    ("Ball bearings, steel, 35 mm bore", "84821000", "CT", 40.5, 200, "H87", "CTH", 610.0),
    ("Tapered roller bearings, 60 mm bore", "84822000", "PX", 406.0, 480, "H87", "CTSH + 35%",
     5200.0),
    ("Hydraulic gear pumps, 12 cc/rev", "84136031", "CT", 22.0, 4, "H87", "CTH", 880.0),
    ("Printed circuit assemblies for industrial controllers", "85389019", "BX", 6.5, 50, "H87",
     "45%", 3900.0),
    ("Stainless steel hex bolts, M12 x 60, A2-70", "73181510", "CT", 25.0, 1000, "H87", "CTH",
     310.0),
    ("Refined palm olein, in 190 kg steel drums", "15119036", "DR", 199.0, 190, "KGM", "40%",
     262.2),
    ("Medical examination gloves, nitrile, boxes of 100", "40151900", "CT", 7.2, 1000, "H87",
     "WO", 28.0),
    ("Natural rubber, TSR 20, 35 kg bales", "40012220", "BL", 35.2, 35, "KGM", "WO", 57.0),
    ("Instant noodles, chicken flavour, 30 x 85 g", "19023040", "CT", 2.7, 30, "H87", "CTH", 9.5),
    ("Canned pineapple slices in syrup, 24 x 565 g", "20082010", "CT", 14.5, 24, "H87", "WO",
     18.0),
    ("Ceramic floor tiles, glazed, 600 x 600 mm", "69072193", "PX", 980.0, 64, "MTK", "CTH",
     720.0),
    ("Solar photovoltaic modules, 550 W", "85414300", "PX", 880.0, 31, "H87", "CTSH + 35%",
     3100.0),
    ("Cotton knitted T-shirts, men's, assorted sizes", "61091010", "CT", 11.0, 60, "H87", "CTH",
     240.0),
    ("Robusta coffee beans, green, 60 kg bags", "09011110", "BG", 60.4, 60, "KGM", "WO", 150.0),
    ("Milled white rice, 5% broken, 50 kg bags", "10063099", "BG", 50.2, 50, "KGM", "WO", 27.5),
    ("Frozen shrimp, peeled, 10 x 1 kg cartons", "03061721", "CT", 10.8, 10, "KGM", "WO", 95.0),
    ("Insulated copper conductors, 0.6/1 kV, on reels", "85444949", "RL", 204.0, 500, "MTR",
     "40%", 1745.0),
    ("Plywood, tropical hardwood faces, 18 mm", "44123100", "PX", 1150.0, 45, "MTQ", "CTH",
     640.0),
    ("Desiccated coconut, fine grade, 25 kg bags", "08011100", "BG", 25.3, 25, "KGM", "WO", 48.0),
    ("Integrated circuits, processors and controllers", "85423100", "BX", 4.4, 1000, "H87",
     "CTSH", 4200.0),
)  # fmt: skip

_VESSELS = ("KOTA SATRIA", "ONE HARMONY", "KMTC PENANG", "WAN HAI 316", "MAERSK SELETAR",
            "EVER LUCID", "CMA CGM JAKARTA", "SITC HAIPHONG")  # fmt: skip


# --- the generator --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Generated:
    """One generated document: a file name, its bytes and what a gateway should answer."""

    name: str
    data: bytes
    valid: bool
    codes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Breakage:
    """How ``--invalid RULE`` breaks a document, and the finding codes that follow.

    ``codes`` lists every finding the broken document gets: usually just the rule, but a few
    rules cannot be broken alone (a non-member importing country is also not the receiver).
    ``valid`` is True for warning rules: the document is accepted, with the warning.
    """

    kinds: frozenset[str]
    codes: tuple[str, ...]
    edit: Edit[_Facts]
    valid: bool = False
    needs_fob_country: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class _Facts:
    """What an edit needs to know about the document it breaks."""

    sender: str
    receiver: str
    today: date
    message_id: str


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _digits(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randint(0, 9)) if ch == "#" else ch for ch in pattern)


def _pick_pair(rng: random.Random, fob_country: bool) -> tuple[str, str]:
    codes = sorted(COUNTRIES)
    while True:
        sender, receiver = rng.sample(codes, 2)
        if not fob_country or {sender, receiver} & {"KH", "ID", "LA"}:
            return sender, receiver


def _party_of(country: Country, index: int) -> Party:
    name, party_id, line, city, postcode = country.companies[index % len(country.companies)]
    return Party(
        name=name, party_id=party_id, line=line, city=city, postcode=postcode, country=country.code
    )


def _transport(rng: random.Random, sender: str, receiver: str) -> tuple[str, str]:
    """(UN/Rec 19 mode, vessel name or vehicle plate)."""
    if frozenset((sender, receiver)) in LAND_BORDERS and rng.random() < 0.4:
        return "3", _digits(rng, COUNTRIES[sender].plate)
    return "1", f"{rng.choice(_VESSELS)} {rng.randint(1, 99):03d}{rng.choice('NSEW')}"


def _goods(
    rng: random.Random, count: int
) -> list[tuple[tuple[str, str, str, float, int, str, str, float], int]]:
    return [(rng.choice(PRODUCTS), rng.randint(1, 400)) for _ in range(count)]


def _local(instant: datetime, country: Country) -> str:
    zone = timezone(timedelta(hours=country.utc_offset))
    return instant.astimezone(zone).isoformat(timespec="seconds")


def _form_d(rng: random.Random, seq: int, items: int, now: datetime, fob_country: bool) -> FormD:
    sender, receiver = _pick_pair(rng, fob_country)
    origin, destination = COUNTRIES[sender], COUNTRIES[receiver]
    created = now - timedelta(minutes=rng.randint(30, 600))
    issued = created.date() - timedelta(days=rng.randint(0, 1))
    declared = issued - timedelta(days=rng.randint(0, 2))
    invoiced = declared - timedelta(days=rng.randint(1, 6))
    departure = issued + timedelta(days=rng.randint(0, 4))
    loading, unloading = rng.choice(origin.ports), rng.choice(destination.ports)
    mode, vessel = _transport(rng, sender, receiver)
    exporter = _party_of(origin, rng.randrange(2))
    fob_due = bool({sender, receiver} & {"KH", "ID", "LA"})  # Rule 25: FOB only where required
    goods = []
    for n, (product, packages) in enumerate(_goods(rng, items), start=1):
        desc, hs, package, kg, per_package, unit, criterion, fob = product
        goods.append(
            Item(
                marks=f"{destination.code}/{unloading[0][2:]}/{seq:04d}-{n:03d}",
                packages=packages,
                package_type=package,
                description=desc,
                hs=hs,
                gross_kg=f"{packages * kg * rng.uniform(0.97, 1.03):.1f}",
                quantity=str(packages * per_package),
                unit=unit,
                origin=sender,
                criterion=criterion,
                fob=(f"{packages * fob:.2f}", "USD") if "%" in criterion and fob_due else None,
            )
        )
    return FormD(
        message_id=_uuid(rng),
        sender=sender,
        receiver=receiver,
        created=_local(created, origin),
        reference_no=f"{sender}{issued:%y}-CO-{rng.randint(0, 9_999_999):07d}",
        issue_date=issued.isoformat(),
        issue_place=loading[0],
        authority=origin.authority,
        exporter=exporter,
        consignee=_party_of(destination, rng.randrange(2)),
        signatory=rng.choice(origin.people),
        declaration_place=loading[1],
        declaration_date=declared.isoformat(),
        invoices=((f"INV-{invoiced:%y%m}-{rng.randint(1, 99999):05d}", invoiced.isoformat()),),
        items=tuple(goods),
        departure=departure.isoformat(),
        mode=mode,
        vessel=vessel,
        loading=loading[0],
        unloading=unloading,
    )


def _acdd(rng: random.Random, items: int, now: datetime) -> Acdd:
    sender, receiver = _pick_pair(rng, fob_country=False)
    origin, destination = COUNTRIES[sender], COUNTRIES[receiver]
    created = now - timedelta(minutes=rng.randint(30, 600))
    issued = created - timedelta(minutes=rng.randint(10, 240))
    loading, unloading = rng.choice(origin.ports), rng.choice(destination.ports)
    mode, vessel = _transport(rng, sender, receiver)
    exporter = _party_of(origin, rng.randrange(2))
    broker = _party_of(origin, rng.randrange(2) + 1)
    goods = [
        AcddItem(
            description=product[0],
            hs=product[1],
            gross_kg=f"{packages * product[3] * rng.uniform(0.97, 1.03):.1f}",
            quantity=str(packages * product[4]),
            unit=product[5],
            origin=sender if product[6] != "CTSH" else rng.choice(("TW", "JP", "KR", sender)),
        )
        for product, packages in _goods(rng, items)
    ]
    return Acdd(
        message_id=_uuid(rng),
        sender=sender,
        receiver=receiver,
        created=_local(created, origin),
        declaration_no=f"EX{issued:%Y%m%d}{rng.randint(0, 99_999_999):08d}",
        issued=_local(issued, origin),
        exit_date=(issued.date() + timedelta(days=rng.randint(0, 3))).isoformat(),
        exporter_name=exporter.name,
        exporter_id=exporter.party_id or "",
        declarant_name=f"{broker.name.split(' ')[0]} Freight Declarations",
        declarant_id=_digits(rng, "##########"),
        consignee=_party_of(destination, rng.randrange(2)),
        mode=mode,
        vessel=vessel[:35],
        loading=loading[0],
        unloading=unloading,
        items=tuple(goods),
    )


# --- --invalid RULE: one edit per rule --------------------------------------------------------


def _fob_on_item1(root: etree._Element, facts: _Facts) -> None:
    """Give goods item 1 a FOB value (a 'PC x%' criterion is an RVC and may need one)."""
    found = root.xpath(f"{_ITEM1}/fdx:FOBValueAmount", namespaces=NAMESPACES)
    if isinstance(found, list) and found:
        return
    add: Edit[_Facts] = insert_after(
        f"{_ITEM1}/fd:Origin", '<fdx:FOBValueAmount currencyID="USD">1000.00</fdx:FOBValueAmount>'
    )
    add(root, facts)


def _reference_to_self(root: etree._Element, facts: _Facts) -> None:
    """Make the document refer to its own message id."""
    add: Edit[_Facts] = insert_after(
        "//cm:CreationDateTime",
        f"<cm:ReferencedMessageID>{facts.message_id}</cm:ReferencedMessageID>",
    )
    add(root, facts)


def _other_member(facts: _Facts) -> str:
    return next(c for c in sorted(COUNTRIES) if c not in {facts.sender, facts.receiver})


def _future_date(facts: _Facts) -> str:
    return (facts.today + timedelta(days=30)).isoformat()


def _future_datetime(facts: _Facts) -> str:
    return f"{facts.today + timedelta(days=30)}T09:00:00Z"


FD, AC, BOTH = frozenset({"formd"}), frozenset({"acdd"}), frozenset({"formd", "acdd"})
_ITEM1 = "//fd:GovernmentAgencyGoodsItem[1]"
_FLAG = "//fdx:CertificateFlags/fdx:{}Indicator"
_DEST = "//fd:Destination/fd:CountryCode | //ac:Destination/ac:CountryCode"
_EXPORT = "//fd:ExportCountry/fd:ID | //ac:ExportCountry/ac:ID"
_ORIGINAL = (
    "<fdx:BackToBackOriginalReference><fdx:ID>VN-HCM-26-0088123</fdx:ID>{}"
    "</fdx:BackToBackOriginalReference>"
)
_INVOICING = (
    "<fdx:ThirdCountryInvoicingParty><fdx:Name>Harbour Trading Ltd</fdx:Name>"
    "<fdx:CountryCode>HK</fdx:CountryCode></fdx:ThirdCountryInvoicingParty>"
)


def _breakage(
    kinds: frozenset[str],
    codes: tuple[str, ...],
    edit: Edit[_Facts],
    *,
    valid: bool = False,
    needs_fob_country: bool = False,
) -> Breakage:
    return Breakage(
        kinds=kinds, codes=codes, edit=edit, valid=valid, needs_fob_country=needs_fob_country
    )


BREAKAGES: dict[str, Breakage] = {
    # header rules, both document types
    "datetime-in-future": _breakage(BOTH, ("datetime-in-future",),
                             set_text("//cm:CreationDateTime", _future_datetime)),
    "reference-missing": _breakage(BOTH, ("reference-missing",),
                                   set_text("//cm:FunctionCode", "5")),
    "reference-to-self": _breakage(BOTH, ("reference-to-self",), _reference_to_self),
    "sender-is-receiver": _breakage(BOTH, ("import-country-not-receiver", "sender-is-receiver"),
                             set_text("//cm:ReceiverParty/cm:CountryCode", lambda f: f.sender)),
    # countries
    "countries-identical": _breakage(BOTH, ("countries-identical",),
                                     set_text(_DEST, lambda f: f.sender)),
    "country-not-member-state": _breakage(BOTH, ("country-not-member-state",
                                          "import-country-not-receiver"), set_text(_DEST, "CN")),
    "export-country-not-sender": _breakage(BOTH, ("export-country-not-sender",),
                                    set_text(_EXPORT, _other_member)),
    "import-country-not-receiver": _breakage(BOTH, ("import-country-not-receiver",),
                                      set_text(_DEST, _other_member)),
    # Form D goods items
    "origin-country-not-member-state": _breakage(FD, ("origin-country-not-member-state",),
                                          set_text(f"{_ITEM1}/fd:Origin/fd:CountryCode", "CN")),
    "origin-criterion-format": _breakage(FD, ("origin-criterion-format",),
                                  set_text(f"{_ITEM1}//fdx:OriginCriterionCode", "CTX")),
    "partial-cumulation-out-of-range": _breakage(FD, ("partial-cumulation-out-of-range",), all_of(
        set_text(f"{_ITEM1}//fdx:OriginCriterionCode", "PC 45%"), _fob_on_item1,
        set_text(_FLAG.format("PartialCumulation"), "true")), needs_fob_country=True),
    "partial-cumulation-flag-mismatch": _breakage(FD, ("partial-cumulation-flag-mismatch",), all_of(
        set_text(f"{_ITEM1}//fdx:OriginCriterionCode", "PC 25%"), _fob_on_item1), valid=True,
        needs_fob_country=True),
    "fob-value-missing": _breakage(FD, ("fob-value-missing",), all_of(
        set_text(f"{_ITEM1}//fdx:OriginCriterionCode", "40%"),
        drop_if_present(f"{_ITEM1}/fdx:FOBValueAmount")), needs_fob_country=True),
    "hs-code-length": _breakage(FD, ("hs-code-length",),
                         set_text(f"{_ITEM1}//fd:Classification/fd:ID", "8482")),
    # Form D dates and flags
    "date-in-future": _breakage(FD, ("date-in-future",),
                                set_text("//fdx:DeclarationDate", _future_date)),
    "issue-date-after-departure": _breakage(FD, ("issue-date-after-departure",), set_text(
        "//fdx:DepartureDate", lambda f: (f.today - timedelta(days=20)).isoformat())),
    "retroactive-issue-too-late": _breakage(FD, ("retroactive-issue-too-late",), all_of(
        set_text("//fdx:DepartureDate", lambda f: (f.today - timedelta(days=400)).isoformat()),
        set_text(_FLAG.format("IssuedRetroactively"), "true"))),
    "retroactive-departure-date-missing": _breakage(FD, ("retroactive-departure-date-missing",),
                                                    all_of(
        drop("//fdx:DepartureDate"), set_text(_FLAG.format("IssuedRetroactively"), "true"))),
    "retroactive-flag-unneeded": _breakage(FD, ("retroactive-flag-unneeded",),
                                    set_text(_FLAG.format("IssuedRetroactively"), "true"),
                                    valid=True),
    "back-to-back-original-missing": _breakage(FD, ("back-to-back-original-missing",),
                                        set_text(_FLAG.format("BackToBack"), "true")),
    "back-to-back-original-incomplete": _breakage(FD, ("back-to-back-original-incomplete",), all_of(
        set_text(_FLAG.format("BackToBack"), "true"),
        insert_after("//fdx:CertificateFlags", _ORIGINAL.format("")))),
    "back-to-back-not-flagged": _breakage(FD, ("back-to-back-not-flagged",), insert_after(
        "//fdx:CertificateFlags",
        _ORIGINAL.format("<fdx:IssueDate>2026-01-05</fdx:IssueDate>")), valid=True),
    "third-country-invoicing-party-missing": _breakage(
        FD, ("third-country-invoicing-party-missing",),
        set_text(_FLAG.format("ThirdCountryInvoicing"), "true")),
    "third-country-invoicing-not-flagged": _breakage(FD, ("third-country-invoicing-not-flagged",),
                                              insert_after("//fdx:CertificateFlags", _INVOICING),
                                              valid=True),
    "exhibition-missing": _breakage(FD, ("exhibition-missing",),
                                    set_text(_FLAG.format("Exhibition"),
                                                              "true")),
    # XSD constraints
    "xsd-invalid-value": _breakage(BOTH, ("xsd-invalid-value",), set_text(
        "//fd:GovernmentAgencyGoodsItem[1]//fd:Classification/fd:ID"
        " | //ac:GovernmentAgencyGoodsItem[1]//ac:Classification/ac:ID", "8482.10.AB")),
    "xsd-not-in-code-list": _breakage(BOTH, ("xsd-not-in-code-list",), set_text(
        "//fd:BorderTransportMeans/fd:ModeCode | //ac:BorderTransportMeans/ac:ModeCode", "10")),
    "xsd-missing-element": _breakage(FD, ("xsd-missing-element",),
                              drop(_FLAG.format("PartialCumulation"))),
    "xsd-unexpected-element": _breakage(BOTH, ("xsd-unexpected-element",),
                                 drop("//fd:Exporter/cm:Name | //ac:Declarant")),
    "xsd-missing-attribute": _breakage(BOTH, ("xsd-missing-attribute",), set_attribute(
        "(//fd:GrossMassMeasure | //ac:GrossMassMeasure)[1]", "unitCode", None)),
    "xsd-duplicate-key": _breakage(BOTH, ("xsd-duplicate-key",), set_text(
        "(//fd:GovernmentAgencyGoodsItem | //ac:GovernmentAgencyGoodsItem)[2]/*[1]", "1")),
    "xsd-unexpected-text": _breakage(FD, ("xsd-unexpected-text",),
                              set_text(f"{_ITEM1}/fd:Packaging", "12 cartons")),
}  # fmt: skip


def generate(
    kind: str,
    *,
    count: int,
    items: int = 3,
    seed: int = 1,
    invalid: str | None = None,
    now: datetime | None = None,
) -> Iterator[Generated]:
    """``count`` documents of ``kind`` (``formd`` or ``acdd``), the same for the same inputs.

    ``now`` is the reference instant (default: today at 00:00 UTC, so that a day's runs agree);
    every date lies before it, so that a gateway's clock accepts the documents.
    """
    if kind not in {"formd", "acdd"}:
        raise ValueError(f"unknown document type {kind!r}: choose formd or acdd")
    breakage = BREAKAGES.get(invalid) if invalid else None
    if invalid and (breakage is None or kind not in breakage.kinds):
        raise ValueError(
            f"--invalid {invalid} is not available for {kind}; choose one of "
            f"{', '.join(invalid_rules(kind))}"
        )
    if breakage is not None and invalid == "xsd-duplicate-key":
        items = max(items, 2)
    if now is None:
        now = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
    rng = random.Random(seed)  # noqa: S311  (test data, not security)
    for seq in range(1, count + 1):
        root: etree._Element
        if kind == "formd":
            fob_country = breakage is not None and breakage.needs_fob_country
            doc = _form_d(rng, seq, items, now, fob_country)
            root, sender, receiver = build(doc), doc.sender, doc.receiver
            message_id = doc.message_id
        else:
            acdd = _acdd(rng, items, now)
            root, sender, receiver = build_acdd(acdd), acdd.sender, acdd.receiver
            message_id = acdd.message_id
        valid, codes = True, tuple[str, ...]()
        if breakage is not None:
            breakage.edit(
                root,
                _Facts(sender=sender, receiver=receiver, today=now.date(), message_id=message_id),
            )
            valid, codes = breakage.valid, tuple(sorted(breakage.codes))
        suffix = f"-{invalid}" if invalid else ""
        yield Generated(
            name=f"{kind}-{seq:04d}-{sender.lower()}-{receiver.lower()}{suffix}.xml",
            data=serialise(root),
            valid=valid,
            codes=codes,
        )


def invalid_rules(kind: str) -> list[str]:
    """The rule codes ``--invalid`` accepts for ``kind``."""
    return sorted(code for code, b in BREAKAGES.items() if kind in b.kinds)


def manifest_entry(name: str, *, valid: bool, codes: Iterable[str]) -> dict[str, object]:
    """One line of a ``manifest.json``: the file, whether it must be accepted, its finding codes."""
    return {"file": name, "valid": valid, "codes": list(codes)}


def write_manifest(path: Path, entries: Iterable[dict[str, object]]) -> None:
    """Write ``manifest.json``: the entries sorted by file, two-space JSON, a final newline.

    The one manifest writer, for the committed ``samples/`` and for generated sets alike.
    """
    path.write_text(json.dumps(sorted(entries, key=lambda e: str(e["file"])), indent=2) + "\n")


def write_set(out: Path, documents: Iterator[Generated] | list[Generated]) -> list[Path]:
    """Write the documents into ``out`` with a ``manifest.json`` that replay can judge by."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    entries: dict[str, dict[str, object]] = {}
    if manifest_path.exists():
        entries = {str(e["file"]): e for e in json.loads(manifest_path.read_text())}
    written = []
    for doc in documents:
        path = out / doc.name
        path.write_bytes(doc.data)
        written.append(path)
        entries[doc.name] = manifest_entry(doc.name, valid=doc.valid, codes=doc.codes)
    write_manifest(manifest_path, entries.values())
    return written
