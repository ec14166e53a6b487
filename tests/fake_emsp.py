"""A fake eMSP platform, served over real HTTP by the tests: versions, version details, credentials, and a
locations/tokens receiver that records what it gets. It can be told to fail in the ways real partners do."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx

# Plain ASGI types: this fake is framework-free on purpose.
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ROLE = {"role": "EMSP", "country_code": "DE", "party_id": "EMP", "business_details": {"name": "Fake eMSP"}}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    open_transactions: int | None = None  # in the hub's process when the request arrived, if counted
    query: str = ""  # the query string, as sent

    @property
    def token(self) -> str:
        value = self.headers.get("authorization", "").removeprefix("Token ")
        return base64.b64decode(value).decode()


# A failure to apply to the next request: an HTTP status with an optional OCPI status_code (and Retry-After), a
# delay or a wait for an event (a hanging partner), or "drop" (the connection closes in the middle of the answer).
@dataclass
class Failure:
    http_status: int = 200
    status_code: int = 1000
    delay: float = 0.0
    drop: bool = False
    retry_after: str | None = None
    until: asyncio.Event | None = None
    reached: asyncio.Event | None = None  # set when the request this failure applies to arrives
    message: str = "told to fail"  # the status_message answered (a NUL or other control characters included)


def envelope(data: Any = None, status_code: int = 1000, message: str = "Success") -> dict[str, Any]:
    body = {"status_code": status_code, "status_message": message, "timestamp": "2026-01-01T00:00:00Z"}
    if data is not None:
        body["data"] = data
    return body


@dataclass
class FakeEmsp:
    base_url: str = ""
    versions: list[str] = field(default_factory=lambda: ["2.2.1"])
    # Tokens this fake accepts (it plays the server side of the tokens it issued).
    accepted_tokens: set[str] = field(default_factory=lambda: {"token-a-of-emsp"})
    token_c: str = "token-c-of-emsp"
    roles: list[dict[str, Any]] = field(default_factory=lambda: [ROLE])  # in the Credentials it answers with
    requests: list[Recorded] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    modules: list[tuple[str, str]] = field(
        default_factory=lambda: [("credentials", "SENDER"), ("locations", "RECEIVER"), ("tokens", "SENDER")]
    )
    # When the hub POSTs its credentials, a real eMSP GETs the hub's versions with token B before answering.
    call_back: bool = True
    received_token_b: str | None = None
    stored: dict[str, Any] = field(default_factory=dict)
    # Runs when the hub's credentials POST arrives, with the token B it carries, before the fake answers.
    on_token_b: Callable[[str], Awaitable[None]] | None = None
    # Counts the database transactions open at this moment (tests/test_registration_transactions.py): recorded
    # with every request, to show that the hub never waits for us inside one.
    open_transactions: Callable[[], int] | None = None
    # Answers to the hub's real-time authorization, POST {tokens}/{uid}/authorize, by token uid: an
    # AuthorizationInfo (answered HTTP 200, status 1000), or a Failure applied as for `failures` (a Failure with
    # its default status answers 200/1000 without data). A uid not listed gets the generic answer.
    authorizations: dict[str, dict[str, Any] | Failure] = field(default_factory=dict)
    # Runs as each request arrives, before it is answered (a slow partner, as the hub's clock sees it).
    on_request: Callable[[Recorded], None] | None = None

    def app(self, base_url: str) -> FakeEmsp:
        self.base_url = base_url
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":  # the caller went away (a replica killed) mid-request:
                return  # like a real server, nothing was received
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        recorded = Recorded(scope["method"], scope["path"], headers, json.loads(body) if body else None)
        recorded.query = scope["query_string"].decode()
        if self.open_transactions is not None:
            recorded.open_transactions = self.open_transactions()
        self.requests.append(recorded)
        if self.on_request is not None:
            self.on_request(recorded)
        status, payload, extra = await self._respond(recorded)
        if status == 0:
            # Drop the connection: start the answer, then fail, and the server closes the socket mid-answer.
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionResetError("dropped on purpose")
        raw = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": raw})

    async def _respond(self, r: Recorded) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        """The answer to `r`, with its extra headers: the next failure if one is queued, else `_answer`."""
        if self.failures:
            failure = self.failures.pop(0)
            if failure.reached is not None:
                failure.reached.set()
            await asyncio.sleep(failure.delay)
            if failure.until is not None:
                await failure.until.wait()
            if failure.drop:
                return 0, None, []
            if failure.http_status != 200 or failure.status_code != 1000:
                extra = [(b"retry-after", failure.retry_after.encode())] if failure.retry_after else []
                return failure.http_status, envelope(status_code=failure.status_code, message=failure.message), extra
        if r.method == "POST" and r.path.rstrip("/").endswith("/cdrs") and isinstance(r.body, dict):
            # A CDRs Receiver keeps the CDR and names where in its Location header (docs/cpo-modules.md §5.2).
            path = f"{r.path.rstrip('/')}/{r.body.get('id')}"
            self.stored[path] = r.body
            return 201, envelope(), [(b"location", f"{self.base_url}{path}".encode())]
        return (*await self._answer(r), [])

    async def _answer(self, r: Recorded) -> tuple[int, Any]:
        try:
            token = r.token
        except ValueError:
            token = ""
        if token not in self.accepted_tokens:
            return 401, envelope(status_code=2000, message="unknown token")
        path = r.path.rstrip("/")
        if path == "/versions":
            return 200, envelope([{"version": v, "url": f"{self.base_url}/{v}"} for v in self.versions])
        for version in self.versions:
            if path == f"/{version}":
                endpoints = [
                    {"identifier": m, "role": role, "url": f"{self.base_url}/{version}/{m}"} for m, role in self.modules
                ]
                return 200, envelope({"version": version, "endpoints": endpoints})
        if path.endswith("/credentials"):
            return await self._credentials(r)
        if r.method == "POST" and (uid := _authorize_uid(path)) in self.authorizations:
            return await _authorize(self.authorizations[uid])
        if r.method == "GET":
            return (200, envelope(self.stored[path])) if path in self.stored else (404, envelope(status_code=2003))
        if r.method == "PUT":
            self.stored[path] = r.body
        return 200, envelope()

    async def _credentials(self, r: Recorded) -> tuple[int, Any]:
        ours = {"token": self.token_c, "url": f"{self.base_url}/versions", "roles": self.roles}
        if r.method == "GET":
            return 200, envelope(ours)
        if r.method != "POST":
            return 405, envelope(status_code=2000)
        self.received_token_b = r.body["token"]
        if self.on_token_b is not None:
            await self.on_token_b(self.received_token_b)
        if self.call_back:
            hub_versions = r.body["url"]
            auth = {"Authorization": "Token " + base64.b64encode(self.received_token_b.encode()).decode()}
            async with httpx.AsyncClient(timeout=5) as http:
                answer = await http.get(hub_versions, headers=auth)
                if answer.status_code != 200:
                    return 200, envelope(status_code=3001, message=f"hub versions said {answer.status_code}")
        self.accepted_tokens = {self.token_c}
        return 200, envelope(ours)

    def received(self, method: str | None = None, prefix: str = "") -> list[Recorded]:
        return [r for r in self.requests if (method is None or r.method == method) and r.path.startswith(prefix)]


def _authorize_uid(path: str) -> str | None:
    """The token uid of a `/{version}/tokens/{uid}/authorize` path, else None."""
    parts = path.strip("/").split("/")
    return parts[2] if len(parts) == 4 and parts[1] == "tokens" and parts[3] == "authorize" else None


async def _authorize(answer: dict[str, Any] | Failure) -> tuple[int, Any]:
    if isinstance(answer, dict):
        return 200, envelope(answer)
    if answer.reached is not None:
        answer.reached.set()
    await asyncio.sleep(answer.delay)
    if answer.until is not None:
        await answer.until.wait()
    if answer.drop:
        return 0, None
    return answer.http_status, envelope(status_code=answer.status_code, message="told to answer so")
