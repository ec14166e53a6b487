"""Charge a car at a running ocpi-hub, playing the operator's systems and the station gateway on the internal API:
a Tariff, a Location whose Connector names it, the demo eMSP's token, then authorize, start, meter readings and
stop. The demo eMSP (examples/demo_emsp.py, registered first) prints the Session updates and the CDR it receives.

    python examples/charge_a_car.py --hub http://127.0.0.1:8000

With `--remote-start --token-c TOKEN` (the token C the demo eMSP printed), the driver starts from the eMSP's app
instead of with a card: the script sends the eMSP's START_SESSION to the hub, then, as the station gateway, takes
the command from the hub's long poll, reports it ACCEPTED and starts the session for it.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

TARIFF = {
    "country_code": "NL",
    "party_id": "OHB",
    "id": "DEMO-TARIFF",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 0.50, "vat": 21.0, "step_size": 1},
                {"type": "ENERGY", "price": 0.35, "vat": 21.0, "step_size": 1},
                {"type": "PARKING_TIME", "price": 3.00, "vat": 21.0, "step_size": 60},
            ]
        }
    ],
}
LOCATION = {
    "country_code": "NL",
    "party_id": "OHB",
    "name": "Demo charging site",
    "address": "Croeselaan 38",
    "city": "Utrecht",
    "country": "NLD",
    "coordinates": {"latitude": "52.089386", "longitude": "5.109612"},
    "evses": [
        {
            "uid": "DEMO-E1",
            "evse_id": "NL*OHB*EDEMO1",
            "connectors": [
                {
                    "id": "1",
                    "standard": "IEC_62196_T2",
                    "format": "SOCKET",
                    "power_type": "AC_3_PHASE",
                    "max_voltage": 230,
                    "max_amperage": 32,
                    "tariff_ids": ["DEMO-TARIFF"],
                }
            ],
        }
    ],
}
# The demo eMSP's driver (examples/demo_emsp.py ROLE), as its eMSP would have pushed the token.
TOKEN = {
    "countryCode": "DE",
    "partyId": "DEM",
    "type": "RFID",
    "uid": "DEMO-CARD-1",
    "contractId": "DE-DEM-C00001",
    "issuer": "Demo eMSP",
    "valid": True,
    "cacheMode": "ALLOWED",
}


def step(what: str, response: httpx.Response) -> Any:
    print(f"{what}: HTTP {response.status_code}")  # noqa: T201 - a demo prints
    if response.is_error:
        raise SystemExit(response.text)
    return response.json() if response.content else None


def remote_start(hub: str, emsp: str, token_c: str, api: httpx.Client) -> dict[str, Any]:
    """The eMSP's START_SESSION, then the gateway's part; the start's fields for the session that follows."""
    reference = secrets.token_hex(8)
    command = {
        "response_url": f"{emsp}/2.2.1/results/{reference}",
        "token": {
            "country_code": "DE",
            "party_id": "DEM",
            "uid": "DEMO-CARD-1",
            "type": "RFID",
            "contract_id": "DE-DEM-C00001",
            "issuer": "Demo eMSP",
            "valid": True,
            "whitelist": "ALLOWED",
            "last_updated": datetime.now(UTC).isoformat(),
        },
        "location_id": "DEMO-LOC",
        "evse_uid": "DEMO-E1",
        "connector_id": "1",
        "authorization_reference": reference,
    }
    auth = {"Authorization": "Token " + base64.b64encode(token_c.encode()).decode()}
    url = f"{hub}/ocpi/2.2.1/commands/START_SESSION"
    answer = step("the eMSP's app: START_SESSION", httpx.post(url, json=command, headers=auth, timeout=10))
    print(f"  -> {answer['data']}")  # noqa: T201
    [pending] = step("the gateway: wait for commands", api.get("/commands", params={"state": "pending", "wait": 10}))
    step(
        "the gateway: the charger accepted", api.post(f"/commands/{pending['id']}/result", json={"result": "ACCEPTED"})
    )
    return {"command_id": pending["id"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", default="http://127.0.0.1:8000")
    parser.add_argument("--admin-token", help="OCPI_HUB_ADMIN_TOKEN of the hub, if it has one")
    parser.add_argument("--remote-start", action="store_true", help="start from the eMSP's app (START_SESSION)")
    parser.add_argument("--token-c", help="with --remote-start: the token C the demo eMSP printed")
    parser.add_argument("--emsp", default="http://127.0.0.1:9100", help="the demo eMSP, where results arrive")
    args = parser.parse_args()
    if args.remote_start and not args.token_c:
        parser.error("--remote-start needs --token-c")
    headers = {"Authorization": f"Bearer {args.admin_token}"} if args.admin_token else {}
    with httpx.Client(base_url=f"{args.hub}/api/v0", headers=headers, timeout=10) as api:
        step("put the tariff", api.put("/tariffs/DEMO-TARIFF", json=TARIFF))
        step("register the location", api.post("/location/DEMO-LOC", json=LOCATION))
        step("store the driver's token", api.post("/token", json=TOKEN))
        start = datetime.now(UTC).replace(microsecond=0)
        session = "DEMO-" + start.strftime("%Y%m%d%H%M%S")
        body: dict[str, Any] = {
            "location_id": "DEMO-LOC",
            "evse_uid": "DEMO-E1",
            "connector_id": "1",
            "token_uid": "DEMO-CARD-1",
            "start_date_time": start.isoformat(),
            "meter_start_wh": 120000,
        }
        if args.remote_start:
            body |= remote_start(args.hub, args.emsp, args.token_c, api)
        else:
            where = {"location_id": "DEMO-LOC", "evse_uids": ["DEMO-E1"]}
            allowed = step("authorize the card", api.post("/token/DEMO-CARD-1/authorize", json=where))
            print(f"  -> {allowed['allowed']} ({allowed['source']})")  # noqa: T201
            if "authorization_reference" in allowed:
                body["authorization_reference"] = allowed["authorization_reference"]
        step("start the session", api.post(f"/sessions/{session}/start", json=body))
        for minutes, register in ((15, 125500), (30, 131000), (45, 136400), (60, 136400)):
            at = (start + timedelta(minutes=minutes)).isoformat()
            reading = {"timestamp": at, "energy_wh": register, "power_w": 22000 if minutes < 60 else 0}
            priced = step(f"meter reading at +{minutes} min", api.post(f"/sessions/{session}/meter", json=reading))
            print(f"  -> {priced['kwh']} kWh, cost so far {priced.get('total_cost')}")  # noqa: T201
        end = (start + timedelta(minutes=70)).isoformat()
        stopped = step(
            "stop", api.post(f"/sessions/{session}/stop", json={"end_date_time": end, "meter_stop_wh": 136400})
        )
        print(json.dumps(stopped["cdr"]["total_cost"]), stopped["cdr"]["currency"])  # noqa: T201


if __name__ == "__main__":
    main()
