"""Settings from `OCPI_HUB_*` environment variables, read once by `load_settings` and passed in from there."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Literal

import msgspec
import msgspec.inspect
import pycountry
from msgspec import Meta
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ocpi_hub import secret_key


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable and the rule."""


class Party(msgspec.Struct, frozen=True):
    """One of our own CPO parties (OCPI CredentialsRole with role CPO)."""

    country_code: str
    party_id: str
    business_name: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.country_code, self.party_id)


PositiveInt = Annotated[int, Meta(ge=1)]
PositiveFloat = Annotated[float, Meta(gt=0)]
Share = Annotated[float, Meta(ge=0, le=1)]
# The levels both `logging` and uvicorn's `log_level` (given in lower case) understand.
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]  # docs/operations.md §1


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Each field is read from OCPI_HUB_<FIELD NAME IN UPPER CASE>; `parties` from the party variables."""

    database_url: str = "sqlite+aiosqlite:///ocpi-hub.db"
    public_url: str = "http://127.0.0.1:8000"
    parties: tuple[Party, ...] = (Party("NL", "OHB", "ocpi-hub CPO"),)
    admin_token: str | None = None
    allow_private_partner_urls: bool = False
    http_timeout: PositiveFloat = 10.0
    # Real-time authorization (ocpi_hub/authorization.py): how long a driver waits for the eMSP's answer.
    authorization_timeout: PositiveFloat = 5.0
    page_limit: PositiveInt = 100
    # Commands (docs/cpo-modules.md §6.5): the timeout of an ACCEPTED CommandResponse; unanswered by then: TIMEOUT.
    command_timeout: PositiveInt = 60
    # The currency of a Session whose Connector has no Tariff (ISO 4217; docs/cpo-modules.md §3.9).
    currency: str = "EUR"
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"
    # Location pushes (ocpi_hub/push): give up on a delivery after this many attempts or this many seconds.
    push_max_attempts: PositiveInt = 10
    push_max_age: PositiveFloat = 86400.0
    # A worker's hold on the deliveries it took; a worker that dies hands them back after this (README "Running at
    # scale").
    push_lease: PositiveFloat = 60.0
    # Run the push worker in this process; a deployment with several processes on one database runs it in one.
    push_worker: bool = True
    # What happened with a partner (docs/operations.md §7): sent deliveries and the OCPI traffic log are kept this
    # many seconds; the traffic log keeps bodies (trimmed, tokens replaced) only when asked.
    sent_retention: PositiveFloat = 86400.0
    traffic_retention: PositiveFloat = 604800.0
    traffic_bodies: bool = False
    # The scheduled location sync (ocpi_hub/sync): a file, directory or http(s) URL of EvseVO location records.
    sync_source: str | None = None
    sync_interval: PositiveFloat = 300.0
    sync_max_remove_share: Share = 0.1  # a run that would remove more of the synced locations stops
    sync_lenient: bool = False
    # Secrets at rest (docs/operations.md §9): seals the tokens we present to partners and keys the hashes of the
    # tokens they present to us; the previous key is read during a rotation, the new one by `rotate-secret-key`.
    secret_key: str | None = None
    previous_secret_key: str | None = None
    new_secret_key: str | None = None

    @property
    def default_party(self) -> Party:
        return self.parties[0]

    @property
    def versions_url(self) -> str:
        return f"{self.public_url}/ocpi/versions"

    def party(self, country_code: str, party_id: str) -> Party | None:
        key = (country_code.upper(), party_id.upper())
        return next((p for p in self.parties if p.key == key), None)


_PREFIX = "OCPI_HUB_"
# Unlike other settings, an empty boolean is a value (false) rather than "unset".
_BOOLEANS = {**dict.fromkeys(("1", "true", "yes", "on"), True), **dict.fromkeys(("0", "false", "no", "off", ""), False)}
_DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg", "postgresql")  # db/engine.py adds asyncpg to the last


def _field_types() -> dict[str, msgspec.inspect.Type]:
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    return {field.name: field.type for field in info.fields if field.name != "parties"}


_FIELD_TYPES = _field_types()


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping; unset or empty variables keep the defaults."""
    values: dict[str, object] = {"parties": _parties(environ)}
    for name, kind in _FIELD_TYPES.items():
        raw = environ.get(_PREFIX + name.upper())
        if raw is None or (raw == "" and not isinstance(kind, msgspec.inspect.BoolType)):
            continue
        check = _CHECKS.get(name)
        values[name] = check(raw) if check else _prepare(raw, kind)
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise _explain(exc, environ) from None


def _prepare(raw: str, kind: msgspec.inspect.Type) -> object:
    """Take the spellings an operator may use that msgspec's lax conversion does not (yes/no, any case, spaces)."""
    if isinstance(kind, msgspec.inspect.BoolType):
        return _BOOLEANS.get(raw.strip().lower(), raw)
    if isinstance(kind, msgspec.inspect.LiteralType):
        return next((v for v in kind.values if str(v).casefold() == raw.strip().casefold()), raw)
    if isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return raw.strip()
    return raw


def _explain(exc: msgspec.ValidationError, environ: Mapping[str, str]) -> SettingsError:
    found = re.search(r"at `\$\.(\w+)`", str(exc))
    if found is None or found[1] not in _FIELD_TYPES:
        return SettingsError(f"settings: {exc}")
    variable = _PREFIX + found[1].upper()
    return SettingsError(f"{variable}: {environ[variable]!r} must be {_rule(_FIELD_TYPES[found[1]])}")


def _rule(kind: msgspec.inspect.Type) -> str:
    """The constraint of a setting's type, in words."""
    if isinstance(kind, msgspec.inspect.BoolType):
        return "a boolean: 1/true/yes/on or 0/false/no/off"
    if isinstance(kind, msgspec.inspect.LiteralType):
        return "one of " + ", ".join(map(str, kind.values))
    if isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        noun = "a whole number" if isinstance(kind, msgspec.inspect.IntType) else "a number"
        if kind.ge is not None and kind.le is not None:
            return f"{noun} from {kind.ge} to {kind.le}"
        limits = [("> ", kind.gt), (">= ", kind.ge), ("< ", kind.lt), ("<= ", kind.le)]
        return " ".join([noun, *(f"{op}{limit}" for op, limit in limits if limit is not None)])
    return f"a {kind}"


def _public_url(raw: str) -> str:
    public_url = raw.rstrip("/")
    if not re.match(r"^https?://[^/]+", public_url):
        raise SettingsError(f"OCPI_HUB_PUBLIC_URL: {public_url!r} must be an http(s) URL")
    if public_url.endswith("/ocpi"):
        raise SettingsError("OCPI_HUB_PUBLIC_URL: give the base URL without /ocpi")
    return public_url


def _database_url(raw: str) -> str:
    # The value is never repeated in a message: it usually holds the database password.
    try:
        driver = make_url(raw).drivername
    except (ArgumentError, ValueError):
        raise SettingsError(
            "OCPI_HUB_DATABASE_URL: not a database URL (such as sqlite+aiosqlite:///ocpi-hub.db "
            "or postgresql://user:password@host/name)"
        ) from None
    if driver not in _DATABASE_DRIVERS:
        raise SettingsError(
            f"OCPI_HUB_DATABASE_URL: the backend {driver!r} is not supported; use {', '.join(_DATABASE_DRIVERS)}"
        )
    return raw


def _currency(raw: str) -> str:
    code = raw.strip().upper()
    if pycountry.currencies.get(alpha_3=code) is None:
        raise SettingsError(f"OCPI_HUB_CURRENCY: {raw!r} must be an ISO 4217 currency code such as EUR")
    return code


def _key(variable: str) -> Callable[[str], str]:
    def check(raw: str) -> str:
        # The value is never repeated in a message: it is a secret.
        try:
            secret_key.parse_key(raw, variable)
        except secret_key.SecretKeyError as exc:
            raise SettingsError(str(exc)) from None
        return raw.strip()

    return check


_CHECKS = {
    "public_url": _public_url,
    "database_url": _database_url,
    "currency": _currency,
    **{name: _key(_PREFIX + name.upper()) for name in ("secret_key", "previous_secret_key", "new_secret_key")},
}


def _parties(environ: Mapping[str, str]) -> tuple[Party, ...]:
    default = Settings().default_party
    first = _party(
        environ.get(_PREFIX + "COUNTRY_CODE") or default.country_code,
        environ.get(_PREFIX + "PARTY_ID") or default.party_id,
        environ.get(_PREFIX + "BUSINESS_NAME") or default.business_name,
        "OCPI_HUB_COUNTRY_CODE / OCPI_HUB_PARTY_ID",
    )
    parties = (first, *_extra_parties(environ.get(_PREFIX + "EXTRA_PARTIES")))
    if len({p.key for p in parties}) != len(parties):
        raise SettingsError("OCPI_HUB_EXTRA_PARTIES: each (country_code, party_id) may appear only once")
    return parties


def _party(country_code: str, party_id: str, business_name: str, where: str) -> Party:
    country_code, party_id = country_code.upper(), party_id.upper()
    if pycountry.countries.get(alpha_2=country_code) is None:
        raise SettingsError(f"{where}: country_code {country_code!r} is not an ISO 3166-1 alpha-2 code")
    if not re.fullmatch(r"[A-Z0-9]{3}", party_id):
        raise SettingsError(f"{where}: party_id {party_id!r} must be 3 letters or digits")
    if not 0 < len(business_name) <= 100:
        raise SettingsError(f"{where}: business name must be 1 to 100 characters")
    return Party(country_code, party_id, business_name)


def _extra_parties(raw: str | None) -> list[Party]:
    """`OCPI_HUB_EXTRA_PARTIES`: a JSON array of {"country_code", "party_id", "business_name"} objects."""
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"OCPI_HUB_EXTRA_PARTIES: not JSON ({exc})") from None
    if not isinstance(items, list):
        raise SettingsError("OCPI_HUB_EXTRA_PARTIES: must be a JSON array of objects")
    parties = []
    for i, item in enumerate(items):
        where = f"OCPI_HUB_EXTRA_PARTIES[{i}]"
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("country_code", "party_id", "business_name")
        ):
            raise SettingsError(f"{where}: needs string country_code, party_id and business_name")
        parties.append(_party(item["country_code"], item["party_id"], item["business_name"], where))
    return parties
