"""`GET /status` (docs/operations.md §5): one HTML page, behind the internal API's guard, that shows an operator at a
glance which partner is failing and why, the sync, the Locations and EVSEs by status, active sessions and open
commands. Self-contained (inline CSS, no script, no network) and refreshed by the browser every few seconds. Built
from the queries of the internal API; every value is escaped, since partners' answers are untrusted text."""

from __future__ import annotations

from datetime import datetime
from html import escape

from litestar import Response, get
from litestar.enums import MediaType

from ocpi_hub.api import deps
from ocpi_hub.api.internal.guard import internal_api_guard
from ocpi_hub.api.internal.partners import PartnerError, PartnerView, partner_views
from ocpi_hub.db import overview, sessions
from ocpi_hub.sync.history import shown_source

REFRESH_SECONDS = 5

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ocpi-hub status</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; background: #fff; }}
h1 {{ font-size: 1.4em; margin: 0; }} h2 {{ font-size: 1.1em; margin: 1.6em 0 .4em; }}
.as-of {{ color: #666; margin: .2em 0 0; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: .35em .7em; border-bottom: 1px solid #ddd; vertical-align: top; }}
th {{ background: #f4f4f6; font-weight: 600; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.health {{ font-weight: 600; white-space: nowrap; }}
tr.health-ok .health {{ color: #176f2c; }}
tr.health-failing {{ background: #fde2e1; }}
tr.health-failing .health {{ color: #b00020; }}
tr.health-dead-letters {{ background: #fff4d6; }}
tr.health-dead-letters .health {{ color: #8a5a00; }}
.error {{ max-width: 46em; word-break: break-word; }}
.past {{ color: #777; }}
.small {{ color: #666; font-size: .9em; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 1em; }}
.card {{ border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 12em; }}
.card b {{ font-size: 1.5em; display: block; }}
</style></head>
<body>
<h1>ocpi-hub status</h1>
<p class="as-of">as of {now} · refreshes every {refresh} s</p>
<h2>Partners</h2>
{partners}
<h2>Now</h2>
<div class="cards">
<div class="card" id="active-sessions"><b>{active_sessions}</b>active sessions</div>
<div class="card" id="open-commands"><b>{open_commands}</b>open commands</div>
<div class="card" id="locations"><b>{published}</b>published Locations{unpublished}</div>
</div>
<h2>EVSEs by status</h2>
{evses}
<h2>Location sync</h2>
{sync}
</body></html>
"""


@get(
    "/status",
    operation_id="statusPage",
    guards=[internal_api_guard],
    include_in_schema=False,
    media_type=MediaType.HTML,
)
async def status_page(db: deps.Db, now: deps.Clock, config: deps.Config) -> Response[str]:
    """The status page. Read-only: the same partner views as listPartners, and a few counts."""
    at = now()
    partners = await partner_views(db, at)
    locations = await overview.location_counts(db)
    page = _PAGE.format(
        refresh=REFRESH_SECONDS,
        now=_time(at),
        partners=_partners(partners, at),
        active_sessions=await sessions.active_count(db),
        open_commands=await overview.open_commands(db),
        published=locations.published,
        unpublished=f"<br><span class=small>{locations.unpublished} unpublished</span>"
        if locations.unpublished
        else "",
        evses=_evses(locations.evses),
        sync=_sync(await overview.sync_state(db), config.sync_source, config.sync_interval, at),
    )
    return Response(page, media_type=MediaType.HTML, headers={"Cache-Control": "no-store"})


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _time(at: datetime | None, now: datetime | None = None) -> str:
    if at is None:
        return "never"
    shown = at.strftime("%Y-%m-%d %H:%M:%SZ")
    return shown if now is None else f"{shown} ({_duration((now - at).total_seconds())} ago)"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} days"


def _name(p: PartnerView) -> str:
    parties = sorted({f"{r.country_code}/{r.party_id}" for r in p.roles})
    names = sorted({r.business_details.name for r in p.roles})
    label = f"#{p.id} {', '.join(parties)}" if parties else f"#{p.id}"
    return _e(label) + (f"<br><span class=small>{_e(', '.join(names))}</span>" if names else "")


def _error(error: PartnerError | None, p: PartnerView, now: datetime) -> str:
    if error is None:
        return "-"
    answer = []
    if error.http_status is not None:
        answer.append(f"HTTP {error.http_status}")
    if error.ocpi_status is not None:
        answer.append(f"OCPI {error.ocpi_status}")
    if error.ocpi_message:
        answer.append(f"“{error.ocpi_message}”")
    past = p.last_success_at is not None and p.last_success_at > error.at and p.health == "ok"
    return (
        f'<div class="error{" past" if past else ""}">'
        f"<span class=small>{_e(_time(error.at, now))}, {_e(error.module)}</span><br>"
        f'<span class="answer">{_e(", ".join(answer) or "no answer")}</span><br>'
        f'<span class="small call">{_e(error.error)}</span></div>'
    )


def _partners(views: list[PartnerView], now: datetime) -> str:
    if not views:
        return "<p>No partners yet.</p>"
    rows = []
    for p in views:
        modules = ", ".join(f"{m.module} {m.health}" for m in p.modules if m.health != "ok")
        rows.append(
            f'<tr id="partner-{p.id}" class="partner health-{_e(p.health.replace(" ", "-"))}" '
            f'data-health="{_e(p.health)}">'
            f"<td>{_name(p)}</td><td>{_e(p.state)}<br><span class=small>{_e(p.version or '')}</span></td>"
            f'<td class="health">{_e(p.health)}'
            f"{f'<br><span class=small>{_e(modules)}</span>' if modules else ''}</td>"
            f'<td class="n backlog">{p.backlog}</td><td class="n">{_e(_duration(p.oldest_waiting_seconds))}</td>'
            f"<td>{_e(_time(p.last_success_at, now))}</td><td>{_error(p.last_error, p, now)}</td></tr>"
        )
    head = (
        "<tr><th>Partner</th><th>State</th><th>Health</th><th>Backlog</th><th>Oldest waiting</th>"
        "<th>Last success</th><th>Last error (the partner's answer)</th></tr>"
    )
    return f'<table id="partners"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _evses(by_status: dict[str, int]) -> str:
    if not by_status:
        return "<p>No EVSEs yet.</p>"
    cells = "".join(f"<tr><td>{_e(status)}</td><td class=n>{count}</td></tr>" for status, count in by_status.items())
    return f'<table id="evses"><thead><tr><th>Status</th><th>EVSEs</th></tr></thead><tbody>{cells}</tbody></table>'


def _sync(state: overview.SyncState, source: str | None, interval: float, now: datetime) -> str:
    schedule = f"every {interval:g} s from {_e(shown_source(source))}" if source else "no scheduled sync"
    return (
        f'<p id="sync">{schedule}; {state.managed} locations managed by the sync; '
        f"a record last changed {_e(_time(state.last_change, now))}</p>"
    )
