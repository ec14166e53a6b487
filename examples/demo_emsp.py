"""A tiny demo eMSP that registers with a running ocpi-hub, as a real eMSP would (OCPI 2.2.1 §7.1).

    python examples/demo_emsp.py --hub http://127.0.0.1:8000 --token-a <the token A you registered>

It serves its own versions endpoint on 127.0.0.1:9100 (the hub calls it back with token B before answering),
POSTs its credentials with token A, prints the token C it received, and keeps serving its locations, sessions and
cdrs receivers until you stop it with Ctrl-C, printing what the hub pushes to it (a CDR in full, with its price).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
from typing import Any

import httpx
import uvicorn
from litestar import Litestar, Request, Response, get, route

HOST, PORT = "127.0.0.1", 9100
BASE = f"http://{HOST}:{PORT}"
TOKEN_B = secrets.token_urlsafe(32)  # what the hub must use to call us
ROLE = {"role": "EMSP", "country_code": "DE", "party_id": "DEM", "business_details": {"name": "Demo eMSP"}}


def envelope(data: Any = None) -> dict[str, Any]:
    return {"data": data, "status_code": 1000, "status_message": "Success", "timestamp": "2026-01-01T00:00:00Z"}


def authorized(request: Request[Any, Any, Any]) -> bool:
    value = request.headers.get("authorization", "").removeprefix("Token ")
    return value in (TOKEN_B, base64.b64encode(TOKEN_B.encode()).decode())


@get("/versions")
async def versions(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return envelope([{"version": "2.2.1", "url": f"{BASE}/2.2.1"}]) if authorized(request) else {"status_code": 2000}


@get("/2.2.1")
async def details(request: Request[Any, Any, Any]) -> dict[str, Any]:
    endpoints = [
        {"identifier": "credentials", "role": "SENDER", "url": f"{BASE}/2.2.1/credentials"},
        {"identifier": "locations", "role": "RECEIVER", "url": f"{BASE}/2.2.1/locations"},
        {"identifier": "sessions", "role": "RECEIVER", "url": f"{BASE}/2.2.1/sessions"},
        {"identifier": "cdrs", "role": "RECEIVER", "url": f"{BASE}/2.2.1/cdrs"},
        {"identifier": "commands", "role": "SENDER", "url": f"{BASE}/2.2.1/commands"},
    ]
    return envelope({"version": "2.2.1", "endpoints": endpoints}) if authorized(request) else {"status_code": 2000}


@route("/2.2.1/locations/{rest:path}", http_method=["GET", "PUT", "PATCH"])
async def locations(request: Request[Any, Any, Any], rest: str) -> dict[str, Any]:
    body = await request.body()
    print(f"hub -> demo eMSP: {request.method} {rest} {body[:200]!r}")  # noqa: T201 - a demo prints
    return envelope()


@route("/2.2.1/sessions/{rest:path}", http_method=["GET", "PUT", "PATCH"])
async def sessions(request: Request[Any, Any, Any], rest: str) -> dict[str, Any]:
    session = await request.json()
    cost = session.get("total_cost")
    print(  # noqa: T201 - a demo prints
        f"hub -> demo eMSP: {request.method} session {rest}: status {session.get('status', '-')}, "
        f"{session.get('kwh', '-')} kWh, cost {cost}, {len(session.get('charging_periods') or [])} new period(s)"
    )
    return envelope()


@route("/2.2.1/cdrs", http_method=["POST"])
async def cdrs(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    cdr = await request.json()
    print(f"hub -> demo eMSP: CDR {cdr['id']}:\n{json.dumps(cdr, indent=2)}")  # noqa: T201
    print(f"to bill: {cdr['total_cost']} {cdr['currency']} for {cdr['total_energy']} kWh")  # noqa: T201
    return Response(envelope(), status_code=201, headers={"Location": f"{BASE}/2.2.1/cdrs/{cdr['id']}"})


@route("/2.2.1/results/{command_id:str}", http_method=["POST"])
async def results(request: Request[Any, Any, Any], command_id: str) -> dict[str, Any]:
    """Where our commands' results arrive (the response_url we give with each command)."""
    print(f"hub -> demo eMSP: result of command {command_id}: {(await request.body()).decode()}")  # noqa: T201
    return envelope()


async def register(hub: str, token_a: str) -> None:
    auth = {"Authorization": "Token " + base64.b64encode(token_a.encode()).decode()}
    async with httpx.AsyncClient(timeout=10) as http:
        hub_versions = (await http.get(f"{hub}/ocpi/versions", headers=auth)).json()["data"]
        v221 = next(v for v in hub_versions if v["version"] == "2.2.1")
        endpoints = (await http.get(v221["url"], headers=auth)).json()["data"]["endpoints"]
        credentials_url = next(e["url"] for e in endpoints if e["identifier"] == "credentials")
        ours = {"token": TOKEN_B, "url": f"{BASE}/versions", "roles": [ROLE]}
        answer = (await http.post(credentials_url, headers=auth, json=ours)).json()
    print(json.dumps(answer, indent=2))  # noqa: T201
    if answer["status_code"] == 1000:
        print(f"registered: the hub gave us token C = {answer['data']['token']}")  # noqa: T201


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", default="http://127.0.0.1:8000")
    parser.add_argument("--token-a", required=True)
    args = parser.parse_args()
    app = Litestar([versions, details, locations, sessions, cdrs, results])
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=PORT, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn offers no event for "listening"
        if serving.done():
            return  # it could not start (port taken): uvicorn has said why
        await asyncio.sleep(0.05)
    await register(args.hub, args.token_a)
    await serving


if __name__ == "__main__":
    asyncio.run(main())
