"""A tiny demo eMSP that registers with a running ocpi-hub, as a real eMSP would (OCPI 2.2.1 §7.1).

    python examples/demo_emsp.py --hub http://127.0.0.1:8000 --token-a <the token A you registered>

It serves its own versions endpoint (127.0.0.1:9100 unless --host/--port say otherwise; the hub calls it back with
token B before answering), POSTs its credentials with token A, prints the token C it received, and keeps serving its
locations, sessions and cdrs receivers until you stop it with Ctrl-C, printing what the hub pushes to it (a CDR in
full, with its price).

To play a partner that fails, start it again, already registered, with the token B it printed and --fail 503: it
then answers every push with that HTTP status (and OCPI status 3000), and the hub shows it failing.

    python examples/demo_emsp.py --token-b <its token B> --fail 503
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import secrets
from typing import Any

import httpx
import uvicorn
from litestar import Litestar, Request, Response, get, route

ROLE = {"role": "EMSP", "country_code": "DE", "party_id": "DEM", "business_details": {"name": "Demo eMSP"}}


def envelope(data: Any = None, status_code: int = 1000, message: str = "Success") -> dict[str, Any]:
    return {"data": data, "status_code": status_code, "status_message": message, "timestamp": "2026-01-01T00:00:00Z"}


def demo_app(base: str, token_b: str, fail: int | None) -> Litestar:
    """The demo eMSP at `base`, accepting calls with `token_b`; `fail`: the HTTP status of every push's answer."""

    def authorized(request: Request[Any, Any, Any]) -> bool:
        value = request.headers.get("authorization", "").removeprefix("Token ")
        return value in (token_b, base64.b64encode(token_b.encode()).decode())

    def failed(what: str) -> Response[dict[str, Any]] | None:
        if fail is None:
            return None
        print(f"hub -> demo eMSP: {what}: answered HTTP {fail} (--fail)")  # noqa: T201 - a demo prints
        return Response(envelope(None, 3000, "demo eMSP told to fail (--fail)"), status_code=fail)

    @get("/versions")
    async def versions(request: Request[Any, Any, Any]) -> dict[str, Any]:
        if not authorized(request):
            return {"status_code": 2000}
        return envelope([{"version": "2.2.1", "url": f"{base}/2.2.1"}])

    @get("/2.2.1")
    async def details(request: Request[Any, Any, Any]) -> dict[str, Any]:
        endpoints = [
            {"identifier": "credentials", "role": "SENDER", "url": f"{base}/2.2.1/credentials"},
            {"identifier": "locations", "role": "RECEIVER", "url": f"{base}/2.2.1/locations"},
            {"identifier": "sessions", "role": "RECEIVER", "url": f"{base}/2.2.1/sessions"},
            {"identifier": "cdrs", "role": "RECEIVER", "url": f"{base}/2.2.1/cdrs"},
            {"identifier": "commands", "role": "SENDER", "url": f"{base}/2.2.1/commands"},
        ]
        return envelope({"version": "2.2.1", "endpoints": endpoints}) if authorized(request) else {"status_code": 2000}

    @route("/2.2.1/locations/{rest:path}", http_method=["GET", "PUT", "PATCH"])
    async def locations(request: Request[Any, Any, Any], rest: str) -> Response[dict[str, Any]]:
        body = await request.body()
        refused = failed(f"{request.method} location {rest.lstrip('/')}")
        if refused is not None:
            return refused
        shown = body[:100].decode(errors="replace") + ("..." if len(body) > 100 else "")
        print(f"hub -> demo eMSP: {request.method} location {rest.lstrip('/')} {shown}")  # noqa: T201
        return Response(envelope())

    @route("/2.2.1/sessions/{rest:path}", http_method=["GET", "PUT", "PATCH"])
    async def sessions(request: Request[Any, Any, Any], rest: str) -> Response[dict[str, Any]]:
        session = await request.json()
        refused = failed(f"{request.method} session {rest.lstrip('/')}")
        if refused is not None:
            return refused
        cost = session.get("total_cost")
        print(  # noqa: T201
            f"hub -> demo eMSP: {request.method} session {rest.lstrip('/')}: status {session.get('status', '-')}, "
            f"{session.get('kwh', '-')} kWh, cost {cost}, {len(session.get('charging_periods') or [])} new period(s)"
        )
        return Response(envelope())

    @route("/2.2.1/cdrs", http_method=["POST"])
    async def cdrs(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        cdr = await request.json()
        refused = failed(f"CDR {cdr.get('id')}")
        if refused is not None:
            return refused
        print(f"hub -> demo eMSP: CDR {cdr['id']}:\n{json.dumps(cdr, indent=2)}")  # noqa: T201
        print(f"to bill: {cdr['total_cost']} {cdr['currency']} for {cdr['total_energy']} kWh")  # noqa: T201
        return Response(envelope(), status_code=201, headers={"Location": f"{base}/2.2.1/cdrs/{cdr['id']}"})

    @route("/2.2.1/results/{command_id:str}", http_method=["POST"])
    async def results(request: Request[Any, Any, Any], command_id: str) -> dict[str, Any]:
        """Where our commands' results arrive (the response_url we give with each command)."""
        print(f"hub -> demo eMSP: result of command {command_id}: {(await request.body()).decode()}")  # noqa: T201
        return envelope()

    return Litestar([versions, details, locations, sessions, cdrs, results])


async def register(hub: str, token_a: str, base: str, token_b: str) -> None:
    auth = {"Authorization": "Token " + base64.b64encode(token_a.encode()).decode()}
    async with httpx.AsyncClient(timeout=10) as http:
        hub_versions = (await http.get(f"{hub}/ocpi/versions", headers=auth)).json()["data"]
        v221 = next(v for v in hub_versions if v["version"] == "2.2.1")
        endpoints = (await http.get(v221["url"], headers=auth)).json()["data"]["endpoints"]
        credentials_url = next(e["url"] for e in endpoints if e["identifier"] == "credentials")
        ours = {"token": token_b, "url": f"{base}/versions", "roles": [ROLE]}
        answer = (await http.post(credentials_url, headers=auth, json=ours)).json()
    print(json.dumps(answer, indent=2))  # noqa: T201
    if answer["status_code"] == 1000:
        print(f"registered: the hub gave us token C = {answer['data']['token']}")  # noqa: T201


def http_status(value: str) -> int:
    status = int(value)
    if not 400 <= status <= 599:
        raise argparse.ArgumentTypeError(f"{value!r} is not an HTTP error status (400 to 599)")
    return status


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", default="http://127.0.0.1:8000", help="the hub's base URL (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9100, help="the port to listen on (default: %(default)s)")
    parser.add_argument("--token-a", help="register with the hub using this token A; without it, only serve")
    parser.add_argument("--token-b", help="the token the hub must use to call us (default: a new random one)")
    parser.add_argument("--fail", type=http_status, metavar="STATUS", help="answer every push with this HTTP status")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its line per request would drown what the hub pushes
    base = f"http://{args.host}:{args.port}"
    token_b = args.token_b or secrets.token_urlsafe(32)
    app = demo_app(base, token_b, args.fail)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn offers no event for "listening"
        if serving.done():
            return 1  # it could not start (port taken): uvicorn has said why
        await asyncio.sleep(0.05)
    print(f"demo eMSP serving {base}/versions; token B (to start it again: --token-b) = {token_b}")  # noqa: T201
    if args.fail is not None:
        print(f"answering every push with HTTP {args.fail} (--fail)")  # noqa: T201
    if args.token_a is not None:
        try:
            await register(args.hub, args.token_a, base, token_b)
        except (httpx.HTTPError, ValueError, KeyError, StopIteration) as exc:
            print(f"could not register with the hub at {args.hub}: {type(exc).__name__} {exc}")  # noqa: T201
            server.should_exit = True
            await serving
            return 1
    await serving
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
