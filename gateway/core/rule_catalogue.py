"""Code lists the business rules need, and the catalogue of business-rule finding codes.

The authoritative document code lists are the schemas in ``xsd/codelists``; the XSD enforces
them. The sets here are only those a rule must reason about (which countries need a FOB value,
which statuses need a reason). ``CATALOGUE`` lists every business rule: its stable code,
severity, Form D box and a one-line summary (the XSD codes are in ``gateway.core.schemas``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lxml import etree

from gateway.core.envelope import (
    MEMBER_STATES,
)
from gateway.core.schemas import where
from gateway.errors import Finding

NS_FORMD_EXT: Final = "urn:asw-gw:datamodel:EFORMD-EXT:1"

MEMBER_STATE_SET: Final = frozenset(MEMBER_STATES)

# Form D Note 10 / OCP Rule 25: the FOB price is shown when RVC is applied and the goods are
# exported from or imported into one of these Member States (either direction, our reading).
FOB_COUNTRIES: Final = frozenset({"KH", "ID", "LA"})

# Document and item statuses of a Customs Response (xsd/codelists/document-status-1.xsd).
STATUS_REJECTED: Final = "REJECTED"
STATUS_PARTIALLY_UTILISED: Final = "PARTIALLY_UTILISED"

# Function codes (UNCL 1225) that change an earlier message and so must reference it.
FUNCTIONS_NEEDING_REFERENCE: Final = frozenset({"1", "5"})

# Digest algorithm URI -> digest length in bytes (xsd/receipt/receipt-1.xsd).
DIGEST_LENGTHS: Final = {
    "http://www.w3.org/2001/04/xmlenc#sha256": 32,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": 48,
    "http://www.w3.org/2001/04/xmlenc#sha512": 64,
}

# Allowed clock skew between a sender and the gateway for "not in the future" checks.
CLOCK_SKEW_SECONDS: Final = 300


# --- the business rules -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One business rule: its stable code, severity, Form D box and what it checks."""

    code: str
    severity: str
    box: str | None
    summary: str

    def finding(
        self, el: etree._Element | None, message: str, hint: str, *, item: str | None = None
    ) -> Finding:
        """A finding of this rule about ``el`` (``message`` without the location prefix)."""
        text = where(self.box, item) + message
        line: object = el.sourceline if el is not None else None  # the stubs leave it untyped
        return Finding(
            severity=self.severity,
            code=self.code,
            message=text[:1].upper() + text[1:],
            box=self.box,
            path=el.getroottree().getpath(el) if el is not None else None,
            line=line if isinstance(line, int) else None,
            hint=hint,
        )

    def without_box(self) -> Rule:
        """The same rule for a document that has no boxes (ACDD)."""
        return Rule(code=self.code, severity=self.severity, box=None, summary=self.summary)

    def boxed_if(self, boxed: bool) -> Rule:
        """This rule when the document has boxes (Form D), else ``without_box()``."""
        return self if boxed else self.without_box()


def _rule(code: str, severity: str, box: str | None, summary: str) -> Rule:
    return Rule(code=code, severity=severity, box=box, summary=summary)


DATETIME_IN_FUTURE = _rule(
    "datetime-in-future",
    "error",
    None,
    "A date-time lies more than 5 minutes after the gateway's clock.",
)
DATE_IN_FUTURE = _rule(
    "date-in-future", "error", "12", "A Form D issue or declaration date lies after today."
)
REFERENCE_MISSING = _rule(
    "reference-missing",
    "error",
    None,
    "A replacement, cancellation or response names no ReferencedMessageID.",
)
REFERENCE_TO_SELF = _rule(
    "reference-to-self", "error", None, "ReferencedMessageID is the message's own id."
)
SENDER_IS_RECEIVER = _rule(
    "sender-is-receiver", "error", None, "The header's sender and receiver are the same country."
)
COUNTRIES_IDENTICAL = _rule(
    "countries-identical", "error", "11", "The exporting and importing countries are the same."
)
COUNTRY_NOT_MEMBER = _rule(
    "country-not-member-state",
    "error",
    "11",
    "The exporting or importing country is not an ASEAN Member State.",
)
EXPORT_NOT_SENDER = _rule(
    "export-country-not-sender",
    "error",
    "header",
    "The exporting country differs from the header's sender.",
)
IMPORT_NOT_RECEIVER = _rule(
    "import-country-not-receiver",
    "error",
    "11",
    "The importing country differs from the header's receiver.",
)
ORIGIN_NOT_MEMBER = _rule(
    "origin-country-not-member-state",
    "error",
    "11",
    "A goods item's country of origin is not an ASEAN Member State.",
)
CRITERION_FORMAT = _rule(
    "origin-criterion-format",
    "error",
    "8",
    "The origin criterion is not WO, CC, CTH, CTSH, SP, x%, 'CTSH + x%' or 'PC x%'.",
)
PC_RANGE = _rule(
    "partial-cumulation-out-of-range",
    "error",
    "8",
    "A 'PC x%' criterion has x below 20 or at 40 and above.",
)
PC_FLAG = _rule(
    "partial-cumulation-flag-mismatch",
    "warning",
    "13",
    "'PC x%' criteria and the Partial Cumulation tick box disagree.",
)
FOB_MISSING = _rule(
    "fob-value-missing",
    "error",
    "9",
    "An RVC or PC criterion applies, KH, ID or LA is involved, and no FOB value.",
)
HS_LENGTH = _rule(
    "hs-code-length", "error", "7", "The HS code has neither 6, 8 (AHTN) nor 10 digits."
)
# --- official code lists and the HS nomenclature (gateway.core.code_lists, .nomenclature) ---
HS_UNKNOWN = _rule(
    "hs-code-unknown",
    "error",
    "7",
    "The HS chapter, heading or subheading does not exist in the edition in force.",
)
UNIT_UNKNOWN = _rule(
    "unit-code-unknown",
    "error",
    "9",
    "A unit is neither a UN/ECE Rec 20 code nor X plus a Rec 21 package code.",
)
UNIT_RETIRED = _rule(
    "unit-code-retired",
    "warning",
    "9",
    "A UN/ECE Rec 20 unit marked deleted or deprecated is used.",
)
LOCODE_UNKNOWN = _rule(
    "unlocode-unknown",
    "warning",
    "3",
    "A UN/LOCODE of an ASEAN Member State or Timor-Leste is not in the list.",
)
LOCODE_COUNTRY = _rule(
    "unlocode-country-mismatch",
    "warning",
    "3",
    "A UN/LOCODE lies outside the country its box is about (loading port: exporting country).",
)
ISSUED_AFTER_DEPARTURE = _rule(
    "issue-date-after-departure",
    "error",
    "12",
    "Issued more than 3 days after shipment without 'Issued Retroactively' (Rule 10(1)).",
)
RETRO_TOO_LATE = _rule(
    "retroactive-issue-too-late",
    "error",
    "13",
    "Issued retroactively more than one year after shipment.",
)
RETRO_NO_DEPARTURE = _rule(
    "retroactive-departure-date-missing",
    "error",
    "3",
    "Issued retroactively but Box 3 gives no departure date.",
)
RETRO_UNNEEDED = _rule(
    "retroactive-flag-unneeded",
    "warning",
    "13",
    "'Issued Retroactively' is ticked but the issue date is within 3 days of shipment.",
)
B2B_MISSING = _rule(
    "back-to-back-original-missing",
    "error",
    "7",
    "A back-to-back Form D names no original Proof of Origin.",
)
B2B_INCOMPLETE = _rule(
    "back-to-back-original-incomplete",
    "error",
    "7",
    "An original Proof of Origin lacks its reference number or issue date.",
)
B2B_NOT_FLAGGED = _rule(
    "back-to-back-not-flagged",
    "warning",
    "13",
    "Original Proofs of Origin are given but 'Back-to-Back CO' is not ticked.",
)
TCI_MISSING = _rule(
    "third-country-invoicing-party-missing",
    "error",
    "7",
    "'Third Country Invoicing' is ticked but no invoicing company is named.",
)
TCI_NOT_FLAGGED = _rule(
    "third-country-invoicing-not-flagged",
    "warning",
    "13",
    "An invoicing company is named but 'Third Country Invoicing' is not ticked.",
)
EXHIBITION_MISSING = _rule(
    "exhibition-missing", "error", "2", "'Exhibition' is ticked but no exhibition is named."
)
REJECTION_REASON = _rule(
    "rejection-reason-missing",
    "error",
    "4",
    "A REJECTED status (document or item) gives no reason.",
)
PARTIAL_ITEMS = _rule(
    "partial-utilisation-items-missing",
    "error",
    "4",
    "PARTIALLY_UTILISED is given without item statuses.",
)
DIGEST_LENGTH = _rule(
    "receipt-digest-length",
    "error",
    None,
    "The digest value does not have the length of its algorithm.",
)
RECEIPT_REFERENCE = _rule(
    "receipt-reference-mismatch",
    "error",
    None,
    "The receipt's ReceivedMessageID differs from ReferencedMessageID.",
)

CATALOGUE: Final[dict[str, Rule]] = {
    rule.code: rule
    for rule in (
        DATETIME_IN_FUTURE,
        DATE_IN_FUTURE,
        REFERENCE_MISSING,
        REFERENCE_TO_SELF,
        SENDER_IS_RECEIVER,
        COUNTRIES_IDENTICAL,
        COUNTRY_NOT_MEMBER,
        EXPORT_NOT_SENDER,
        IMPORT_NOT_RECEIVER,
        ORIGIN_NOT_MEMBER,
        CRITERION_FORMAT,
        PC_RANGE,
        PC_FLAG,
        FOB_MISSING,
        HS_LENGTH,
        HS_UNKNOWN,
        UNIT_UNKNOWN,
        UNIT_RETIRED,
        LOCODE_UNKNOWN,
        LOCODE_COUNTRY,
        ISSUED_AFTER_DEPARTURE,
        RETRO_TOO_LATE,
        RETRO_NO_DEPARTURE,
        RETRO_UNNEEDED,
        B2B_MISSING,
        B2B_INCOMPLETE,
        B2B_NOT_FLAGGED,
        TCI_MISSING,
        TCI_NOT_FLAGGED,
        EXHIBITION_MISSING,
        REJECTION_REASON,
        PARTIAL_ITEMS,
        DIGEST_LENGTH,
        RECEIPT_REFERENCE,
    )
}


# --- issue 17: the OCP rules as the ATIGA text writes them (helper doc-rules) ---------------
# Kept in one block, registered below, so that other additions to CATALOGUE merge cleanly.

# OCP Rule 10(1): issued "not more than three (3) days from the declared shipment date".
ISSUE_GRACE_DAYS: Final = 3
# Annex 7 Note 3, ATIGA Art. 28/29: the general RVC threshold; Art. 30(2): partial cumulation
# needs at least 20%.
RVC_THRESHOLD: Final = 40
PC_MINIMUM: Final = 20
# The Buddhist Era (Thai calendar) runs 543 years ahead of the Gregorian year.
BUDDHIST_ERA_OFFSET: Final = 543

CRITERION_BELOW_THRESHOLD = _rule(
    "origin-criterion-cannot-confer-origin",
    "error",
    "8",
    "An RVC below 40% alone (e.g. 35%, 0%), or 0% in a combination, cannot confer origin.",
)
ORIGIN_NOT_EXPORTING = _rule(
    "origin-country-not-exporting-state",
    "error",
    "11",
    "A goods item's origin is not the exporting Member State (not back-to-back).",
)
B2B_SAME_COUNTRY = _rule(
    "back-to-back-original-same-country",
    "error",
    "7",
    "The original Proof of Origin was issued by the intermediate (exporting) Member State.",
)
B2B_NOT_EARLIER = _rule(
    "back-to-back-original-not-earlier",
    "error",
    "7",
    "The original Proof of Origin is dated after the back-to-back Form D.",
)
B2B_EXPIRED = _rule(
    "back-to-back-original-expired",
    "error",
    "7",
    "The back-to-back Form D was issued after the original's 12-month validity.",
)
B2B_ORIGIN = _rule(
    "back-to-back-origin-mismatch",
    "error",
    "11",
    "A back-to-back goods item's origin is not the country of any original Proof of Origin.",
)
EXHIBITION_COUNTRY = _rule(
    "exhibition-not-in-member-state",
    "error",
    "2",
    "The exhibition is not held in another ASEAN Member State (Rule 22).",
)
INVOICE_IMPLAUSIBLE = _rule(
    "invoice-date-implausible",
    "error",
    "10",
    "An invoice date is not a plausible Gregorian date (e.g. a Buddhist-era year 2569).",
)
INVOICE_AFTER_ISSUE = _rule(
    "invoice-date-after-issue",
    "error",
    "10",
    "An invoice is dated after the Form D was issued.",
)
DECLARATION_AFTER_ISSUE = _rule(
    "declaration-after-certification",
    "error",
    "11",
    "The exporter's declaration (Box 11) is dated after the certification (Box 12).",
)
DE_MINIMIS_NO_CTC = _rule(
    "de-minimis-without-tariff-shift",
    "error",
    "13",
    "'De Minimis' is ticked but no goods item claims a change in tariff classification.",
)
FOB_NOT_REQUIRED = _rule(
    "fob-value-not-required",
    "warning",
    "9",
    "A FOB value is shown where no rule requires it (Rule 25).",
)
EXPORTER_ABROAD = _rule(
    "exporter-address-outside-exporting-country",
    "warning",
    "1",
    "The exporter's address is outside the exporting Member State.",
)
CERTIFIED_TRUE_COPY = _rule(
    "certified-true-copy-not-for-eform-d",
    "error",
    "12",
    "An e-Form D is marked 'Certified True Copy', which is for paper forms only (Rule 26(2)).",
)

CATALOGUE.update(
    (rule.code, rule)
    for rule in (
        CRITERION_BELOW_THRESHOLD,
        ORIGIN_NOT_EXPORTING,
        B2B_SAME_COUNTRY,
        B2B_NOT_EARLIER,
        B2B_EXPIRED,
        B2B_ORIGIN,
        EXHIBITION_COUNTRY,
        INVOICE_IMPLAUSIBLE,
        INVOICE_AFTER_ISSUE,
        DECLARATION_AFTER_ISSUE,
        DE_MINIMIS_NO_CTC,
        FOB_NOT_REQUIRED,
        EXPORTER_ABROAD,
        CERTIFIED_TRUE_COPY,
    )
)


# --- issue 18 §4: the certified-exporter register and the Origin Declaration (k-registers) --
# Kept in one block, registered below, so that other additions to CATALOGUE merge cleanly.
# The stateful rules (against the register as it stood on a date) run in
# ``gateway.core.registers``; the others in ``gateway.core.rules.self_certification``.

# OCP Rule 2(4)(e): up to ten authorised signatories per certified exporter.
MAX_SIGNATORIES: Final = 10
# OCP Rule 14: an Origin Declaration is valid for 12 months from the day it is made out.
OD_VALIDITY_MONTHS: Final = 12

CE_ISSUER_NOT_SENDER = _rule(
    "ce-issuer-not-sender",
    "error",
    None,
    "A register update's issuing country is not the country that sends it.",
)
CE_RECORD_INCOMPLETE = _rule(
    "ce-record-incomplete",
    "error",
    None,
    "A GRANT or AMEND lacks the exporter's name, validity, an authorised product or a signatory.",
)
CE_VALIDITY_REVERSED = _rule(
    "ce-validity-reversed",
    "error",
    None,
    "A certified exporter's authorisation expires before it is issued.",
)
CE_SIGNATORY_DUPLICATE = _rule(
    "ce-signatory-duplicate", "error", None, "A signatory is listed twice in one record."
)
CE_AUTHORISATION_UNKNOWN = _rule(
    "ce-authorisation-unknown",
    "error",
    None,
    "An AMEND, SUSPEND or WITHDRAW names an authorisation the issuing country never granted.",
)
CE_AUTHORISATION_EXISTS = _rule(
    "ce-authorisation-exists",
    "error",
    None,
    "A GRANT names an authorisation code the issuing country already granted and has not "
    "withdrawn.",
)
CE_AUTHORISATION_WITHDRAWN = _rule(
    "ce-authorisation-withdrawn",
    "error",
    None,
    "An AMEND or SUSPEND names an authorisation already withdrawn.",
)
OD_EXPORT_NOT_SENDER = _rule(
    "od-export-country-not-sender",
    "error",
    None,
    "An Origin Declaration's exporting country is not the country that sends it.",
)
OD_IMPORT_NOT_RECEIVER = _rule(
    "od-import-country-not-receiver",
    "error",
    None,
    "An Origin Declaration's importing country is not the country it is sent to.",
)
OD_DATE_IN_FUTURE = _rule(
    "od-date-in-future", "error", None, "An Origin Declaration is dated after today."
)
OD_CARRIER_DATE_MISMATCH = _rule(
    "od-carrier-document-mismatch",
    "error",
    None,
    "The declaration's number or date is not the carrier document's (Rule 12B(5)(6)).",
)
OD_CRITERION_FORMAT = _rule(
    "od-origin-criterion-format",
    "error",
    None,
    "An origin criterion is not WO, CC, CTH, CTSH, SP, x%, 'CTx + x%' or 'PC x%'.",
)
OD_FOB_MISSING = _rule(
    "od-fob-value-missing",
    "error",
    None,
    "An RVC or PC criterion is claimed and the goods item gives no FOB value (Attachment 1, "
    "2(v): FOB only when an RVC criterion is used).",
)
OD_EXPORTER_NOT_REGISTERED = _rule(
    "od-exporter-not-registered",
    "error",
    None,
    "The certified exporter's authorisation code is not in the exporting country's register "
    "on the declaration date (Rule 2(6)).",
)
OD_AUTHORISATION_NOT_VALID = _rule(
    "od-authorisation-not-valid",
    "error",
    None,
    "The authorisation was suspended, withdrawn, not yet issued or expired on the declaration "
    "date.",
)
OD_EXPORTER_NAME_DIFFERS = _rule(
    "od-exporter-name-differs",
    "warning",
    None,
    "The exporter's name differs from the name in the register for its authorisation code.",
)
OD_SIGNATORY_NOT_REGISTERED = _rule(
    "od-signatory-not-registered",
    "error",
    None,
    "The signatory is not among the exporter's registered signatories on the declaration date "
    "(Rule 2(6)).",
)
OD_PRODUCT_NOT_AUTHORISED = _rule(
    "od-product-not-authorised",
    "error",
    None,
    "A goods item's HS/AHTN code is not among the exporter's authorised products on the "
    "declaration date (Rule 2(6)).",
)
OD_IMPORT_AFTER_VALIDITY = _rule(
    "od-imported-after-12-months",
    "warning",
    None,
    "The goods are imported more than 12 months after the declaration date (Rule 14).",
)

CATALOGUE.update(
    (rule.code, rule)
    for rule in (
        CE_ISSUER_NOT_SENDER,
        CE_RECORD_INCOMPLETE,
        CE_VALIDITY_REVERSED,
        CE_SIGNATORY_DUPLICATE,
        OD_EXPORT_NOT_SENDER,
        OD_IMPORT_NOT_RECEIVER,
        OD_DATE_IN_FUTURE,
        OD_CARRIER_DATE_MISMATCH,
        OD_CRITERION_FORMAT,
        OD_FOB_MISSING,
    )
)

REGISTER_RULES: Final[dict[str, Rule]] = {
    rule.code: rule
    for rule in (
        CE_AUTHORISATION_UNKNOWN,
        CE_AUTHORISATION_EXISTS,
        CE_AUTHORISATION_WITHDRAWN,
        OD_EXPORTER_NOT_REGISTERED,
        OD_AUTHORISATION_NOT_VALID,
        OD_EXPORTER_NAME_DIFFERS,
        OD_SIGNATORY_NOT_REGISTERED,
        OD_PRODUCT_NOT_AUTHORISED,
        OD_IMPORT_AFTER_VALIDITY,
    )
}
"""The rules that read a register's history (``gateway.core.registers``): the submission path
and ``/v1/validate`` run them after ``CATALOGUE``'s, with the history from the journal
(``gateway.register_keeper.RegisterKeeper.add_findings``)."""


# --- issue 18 §5: AEO status under the ASEAN AEO MRA (k-registers) ---------------------------

AEO_ISSUER_NOT_SENDER = _rule(
    "aeo-issuer-not-sender",
    "error",
    None,
    "An AEO status notification's issuing country is not the country that sends it.",
)
AEO_RECEIVER_NOT_PARTNER = _rule(
    "aeo-receiver-not-mra-partner",
    "error",
    None,
    "An AEO status notification goes to (or comes from) a country not in the ASEAN AEO MRA on "
    "its date: records are forwarded only to MRA partners.",
)
AEO_NOTIFICATION_ID_FORMAT = _rule(
    "aeo-notification-id-format",
    "error",
    None,
    "A notified AEO id does not have its issuing country's AEO id format (gateway/data/aeo.toml).",
)
AEO_VALIDITY_REVERSED = _rule(
    "aeo-validity-reversed", "error", None, "An AEO's ValidTo is before its ValidFrom."
)
AEO_ISSUER_NOT_IN_MRA = _rule(
    "aeo-issuer-not-in-mra",
    "warning",
    None,
    "An ACDD declares an AEO id of a country not in the ASEAN AEO MRA on the declaration date.",
)
AEO_ID_FORMAT = _rule(
    "aeo-id-format",
    "warning",
    None,
    "An ACDD declares an AEO id that does not have its issuing country's format.",
)

CATALOGUE.update(
    (rule.code, rule)
    for rule in (
        AEO_ISSUER_NOT_SENDER,
        AEO_RECEIVER_NOT_PARTNER,
        AEO_NOTIFICATION_ID_FORMAT,
        AEO_VALIDITY_REVERSED,
        AEO_ISSUER_NOT_IN_MRA,
        AEO_ID_FORMAT,
    )
)

AEO_NOT_FOUND = _rule(
    "aeo-not-found",
    "warning",
    None,
    "An ACDD's AEO id is not in its issuing country's AEO register on the declaration date.",
)
AEO_NOT_VALID = _rule(
    "aeo-not-valid",
    "warning",
    None,
    "An ACDD's AEO id is suspended, revoked or outside its validity on the declaration date.",
)
REGISTER_RULES.update((rule.code, rule) for rule in (AEO_NOT_FOUND, AEO_NOT_VALID))


# --- issue 18: the origin conversations (rejection, clarification, retroactive check, visit) --
# Kept in one block, registered below, so that other additions to CATALOGUE merge cleanly.

REJECTION_WITHOUT_REASONS = _rule(
    "rejection-without-reasons",
    "error",
    None,
    "A rejection notice gives no reason, neither for the document nor for any goods item.",
)
REJECTION_AFTER_60_DAYS = _rule(
    "rejection-after-60-days",
    "error",
    None,
    "A rejection notice is issued more than 60 days after the e-Form D's receipt (Rule 13(3)).",
)
RECEIPT_AFTER_REJECTION = _rule(
    "receipt-date-after-rejection",
    "error",
    None,
    "A rejection notice says the e-Form D was received after the notice was issued.",
)
CLARIFICATION_EMPTY = _rule(
    "clarification-empty",
    "error",
    None,
    "A clarification explains nothing, neither for the document nor for any goods item.",
)
VERIFICATION_REASON_MISSING = _rule(
    "verification-reason-missing",
    "error",
    None,
    "A retroactive check or visit request is not at random and gives no reason (Rules 18, 19).",
)
RESULT_EXPLANATION_MISSING = _rule(
    "result-explanation-missing",
    "error",
    None,
    "A goods item's origin is NOT_CONFIRMED without an explanation (Rules 18, 19).",
)
VISIT_DATE_MISSING = _rule(
    "visit-date-missing",
    "error",
    None,
    "A consent to a verification visit gives no visit date.",
)
VISIT_DATE_IN_FUTURE = _rule(
    "visit-date-in-future",
    "error",
    None,
    "A verification visit result reports a visit that lies after today.",
)
REFUSAL_EXPLANATION_MISSING = _rule(
    "refusal-explanation-missing",
    "warning",
    None,
    "A verification visit is refused without an explanation (Rule 19: the importing side may "
    "then deny preference).",
)

CATALOGUE.update(
    (rule.code, rule)
    for rule in (
        REJECTION_WITHOUT_REASONS,
        REJECTION_AFTER_60_DAYS,
        RECEIPT_AFTER_REJECTION,
        CLARIFICATION_EMPTY,
        VERIFICATION_REASON_MISSING,
        RESULT_EXPLANATION_MISSING,
        VISIT_DATE_MISSING,
        VISIT_DATE_IN_FUTURE,
        REFUSAL_EXPLANATION_MISSING,
    )
)


# --- issue 18 §4-5: register lookups (CE lookup, AEO status query) -----------------------------
# Kept in one block, registered below, so that other additions to CATALOGUE merge cleanly.

QUERY_NOT_TO_REGISTER_KEEPER = _rule(
    "register-query-wrong-country",
    "error",
    None,
    "A certified-exporter lookup or AEO status query is not addressed to the Member State whose "
    "register it asks about.",
)
ANSWER_NOT_FROM_REGISTER_KEEPER = _rule(
    "register-answer-wrong-country",
    "error",
    None,
    "A certified-exporter lookup or AEO status response comes from a Member State other than "
    "the one whose register it reports.",
)
QUERY_DATE_IN_FUTURE = _rule(
    "register-query-date-in-future",
    "error",
    None,
    "A register query asks about a day after today: the register cannot say how it will stand.",
)
CE_LOOKUP_EXPORTER_MISSING = _rule(
    "ce-lookup-exporter-result-missing",
    "error",
    None,
    "A certified-exporter lookup response gives no EXPORTER match result.",
)
CE_LOOKUP_INCONSISTENT = _rule(
    "ce-lookup-result-inconsistent",
    "error",
    None,
    "A certified-exporter lookup response matches a product, signatory or validity of an "
    "exporter it reports as not registered.",
)
AEO_QUERY_NOT_PARTNER = _rule(
    "aeo-query-not-mra-partner",
    "error",
    None,
    "An AEO status query or response goes between countries not both in the ASEAN AEO MRA on "
    "the day asked: AEO records go only between MRA partners.",
)
AEO_RESPONSE_INCONSISTENT = _rule(
    "aeo-response-inconsistent",
    "error",
    None,
    "An AEO status response says the id was found but gives no status or validity, or says it "
    "is valid while not found or not VALID.",
)

CATALOGUE.update(
    (rule.code, rule)
    for rule in (
        QUERY_NOT_TO_REGISTER_KEEPER,
        ANSWER_NOT_FROM_REGISTER_KEEPER,
        QUERY_DATE_IN_FUTURE,
        CE_LOOKUP_EXPORTER_MISSING,
        CE_LOOKUP_INCONSISTENT,
        AEO_QUERY_NOT_PARTNER,
        AEO_RESPONSE_INCONSISTENT,
    )
)
# --- issue 18: the origin determination that ends a check or visit (Rules 18, 19) ----------
# Kept in one block, registered below, so that other additions to CATALOGUE merge cleanly.

DETERMINATION_REASON_MISSING = _rule(
    "determination-reason-missing",
    "error",
    None,
    "An origin determination denies preference for a goods item without a reason.",
)
DETERMINATION_ITEM_REPEATED = _rule(
    "determination-item-repeated",
    "error",
    None,
    "An origin determination decides the same goods item twice.",
)
CATALOGUE.update(
    (rule.code, rule) for rule in (DETERMINATION_REASON_MISSING, DETERMINATION_ITEM_REPEATED)
)

REJECTION_TYPE_MISMATCH = _rule(
    "rejection-type-mismatch",
    "error",
    None,
    "A rejection notice's TypeCode names another document type than the message it refers to.",
)
DETERMINATION_PROCEDURE_MISMATCH = _rule(
    "determination-procedure-mismatch",
    "error",
    None,
    "An origin determination's ProcedureCode is not the procedure of the request it refers to.",
)
DETERMINATION_DECLARATION_MISMATCH = _rule(
    "determination-declaration-mismatch",
    "error",
    None,
    "An origin determination names another e-Form D than the request it refers to.",
)
DETERMINATION_ITEM_NOT_REQUESTED = _rule(
    "determination-item-not-requested",
    "error",
    None,
    "An origin determination decides a goods item the check or visit request did not concern.",
)
DETERMINATION_ITEM_UNDECIDED = _rule(
    "determination-item-undecided",
    "warning",
    None,
    "A goods item of the check or visit request has no decision in the origin determination.",
)

FOLLOWED_RULES: Final[dict[str, Rule]] = {
    rule.code: rule
    for rule in (
        REJECTION_TYPE_MISMATCH,
        DETERMINATION_PROCEDURE_MISMATCH,
        DETERMINATION_DECLARATION_MISMATCH,
        DETERMINATION_ITEM_NOT_REQUESTED,
        DETERMINATION_ITEM_UNDECIDED,
    )
}
"""The rules that read the journalled message a conversation step follows
(``gateway.core.rules.conversations.followed_rules``): the submission path runs them after
``CATALOGUE``'s when that message is in the journal; ``/v1/validate`` does not."""
