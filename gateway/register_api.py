"""HTTP API of the registers the gateway keeps (issue 18): who granted what, when, what changed.

- ``GET /v1/registers/certified-exporters/{country}[?on=YYYY-MM-DD]``: every certified exporter
  of ``country``'s register as it stood on ``on`` (default: today), with its status.
- ``GET /v1/registers/certified-exporters/{country}/{authorisation_id}[?on=...]``: one
  authorisation's standing on ``on`` and its whole history (each update: action, effective
  date, the record after it, the reason, the message that brought it and when it was recorded).
- ``GET /v1/registers/aeo/{country}[?on=...]``: every AEO of ``country``'s register as it
  stood on ``on`` (the last notification per id decides; a later snapshot without it removes
  it), with whether it is valid that day.
- ``GET /v1/registers/aeo/{country}/{aeo_id}[?on=...]``: one AEO's record on ``on`` (None when
  not in the register that day) and the notifications that concern it (snapshots and deltas).

Any authenticated party (or the operator key) may read them: they are the customs
administrations' shared register, not public data.
"""

from __future__ import annotations

from datetime import date

from aiohttp import web

from gateway.app_keys import CLOCK, JOURNAL
from gateway.core.aeo import AEO_REGISTER, SNAPSHOT_MARKER, aeo_on
from gateway.core.envelope import MEMBER_STATES
from gateway.core.registers import CERTIFIED_EXPORTERS, RegisterEntry, register_on, standing_on
from gateway.errors import NotFound, RejectedMessage

PREFIX = "/v1/registers/certified-exporters"


def _country(request: web.Request) -> str:
    country = request.match_info["country"].upper()
    if country not in MEMBER_STATES:
        raise NotFound(f"{country} is not an ASEAN Member State with a register here.")
    return country


def _day(request: web.Request) -> date:
    given = request.query.get("on")
    if given is None:
        return request.app[CLOCK]().date()
    try:
        return date.fromisoformat(given)
    except ValueError as exc:
        raise RejectedMessage(f"on={given!r} is not a date (YYYY-MM-DD).") from exc


async def certified_exporters(request: web.Request) -> web.Response:
    """GET /v1/registers/certified-exporters/{country}: the register on a day."""
    country, day = _country(request), _day(request)
    history = await request.app[JOURNAL].register_history(CERTIFIED_EXPORTERS, country)
    standings = register_on(history, day)
    return web.json_response(
        {
            "country": country,
            "on": day.isoformat(),
            "exporters": [standings[key].to_json() for key in sorted(standings)],
        }
    )


async def certified_exporter(request: web.Request) -> web.Response:
    """GET /v1/registers/certified-exporters/{country}/{authorisation_id}: standing, history."""
    country, day = _country(request), _day(request)
    key = request.match_info["authorisation_id"]
    history = await request.app[JOURNAL].register_history(CERTIFIED_EXPORTERS, country, key)
    if not history:
        raise NotFound(f"{country}'s register has no authorisation {key}.")
    standing = standing_on(history, key, day)
    return web.json_response(
        {
            "country": country,
            "authorisation_id": key,
            "on": day.isoformat(),
            "standing": None if standing is None else standing.to_json(),
            "history": [entry.to_json() for entry in history],
        }
    )


async def aeo_register(request: web.Request) -> web.Response:
    """GET /v1/registers/aeo/{country}: every AEO in the register on a day."""
    country, day = _country(request), _day(request)
    history = await request.app[JOURNAL].register_history(AEO_REGISTER, country)
    ids = sorted({e.record_key for e in history if e.record_key != SNAPSHOT_MARKER})
    operators: list[dict[str, object]] = []
    for aeo_id in ids:
        record = aeo_on(history, aeo_id, day)
        if record is not None:
            operators.append({**record.to_json(), "valid": record.valid_on(day)})
    return web.json_response({"country": country, "on": day.isoformat(), "operators": operators})


async def aeo_record(request: web.Request) -> web.Response:
    """GET /v1/registers/aeo/{country}/{aeo_id}: the AEO on a day and what was notified."""
    country, day = _country(request), _day(request)
    aeo_id = request.match_info["aeo_id"]
    history = await request.app[JOURNAL].register_history(AEO_REGISTER, country)
    own = [e for e in history if e.record_key == aeo_id]
    if not own:
        raise NotFound(f"{country}'s AEO register has no {aeo_id}.")
    record = aeo_on(history, aeo_id, day)
    snapshots = [e for e in history if e.record_key == SNAPSHOT_MARKER]
    return web.json_response(
        {
            "country": country,
            "aeo_id": aeo_id,
            "on": day.isoformat(),
            "record": None if record is None else record.to_json(),
            "valid": record is not None and record.valid_on(day),
            "history": [e.to_json() for e in sorted(own + snapshots, key=_notified)],
        }
    )


def _notified(entry: RegisterEntry) -> tuple[date, str]:
    return entry.effective_date, entry.entry_id


def add_register_routes(app: web.Application) -> None:
    """Mount the register routes."""
    app.router.add_get("/v1/registers/aeo/{country}", aeo_register)
    app.router.add_get("/v1/registers/aeo/{country}/{aeo_id}", aeo_record)
    app.router.add_get(PREFIX + "/{country}", certified_exporters)
    app.router.add_get(PREFIX + "/{country}/{authorisation_id}", certified_exporter)
