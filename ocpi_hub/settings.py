"""Settings from `OCPI_HUB_*` environment variables, read once by `load_settings` and passed in from there."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping

import msgspec
import pycountry


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


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = "sqlite+aiosqlite:///ocpi-hub.db"
    public_url: str = "http://127.0.0.1:8000"
    parties: tuple[Party, ...] = (Party("NL", "OHB", "ocpi-hub CPO"),)
    admin_token: str | None = None
    allow_private_partner_urls: bool = False
    http_timeout: float = 10.0
    page_limit: int = 100
    log_level: str = "INFO"
    # Location pushes (ocpi_hub/push): give up on a delivery after this many attempts or this many seconds.
    push_max_attempts: int = 10
    push_max_age: float = 86400.0
    # Run the push worker in this process; a deployment with several processes on one database runs it in one.
    push_worker: bool = True
    # The scheduled location sync (ocpi_hub/sync): a file, directory or http(s) URL of EvseVO location records.
    sync_source: str | None = None
    sync_interval: float = 300.0
    sync_max_remove_share: float = 0.1  # a run that would remove more of the synced locations stops
    sync_lenient: bool = False

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
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping; unset variables keep the documented defaults."""
    defaults = Settings()

    def get(name: str) -> str | None:
        return environ.get(_PREFIX + name)

    default = defaults.default_party
    first = _party(
        get("COUNTRY_CODE") or default.country_code,
        get("PARTY_ID") or default.party_id,
        get("BUSINESS_NAME") or default.business_name,
        "OCPI_HUB_COUNTRY_CODE / OCPI_HUB_PARTY_ID",
    )
    parties = [first, *_extra_parties(get("EXTRA_PARTIES"))]
    if len({p.key for p in parties}) != len(parties):
        raise SettingsError("OCPI_HUB_EXTRA_PARTIES: each (country_code, party_id) may appear only once")

    public_url = (get("PUBLIC_URL") or defaults.public_url).rstrip("/")
    if not re.match(r"^https?://[^/]+", public_url):
        raise SettingsError(f"OCPI_HUB_PUBLIC_URL: {public_url!r} must be an http(s) URL")
    if public_url.endswith("/ocpi"):
        raise SettingsError("OCPI_HUB_PUBLIC_URL: give the base URL without /ocpi")

    return Settings(
        database_url=get("DATABASE_URL") or defaults.database_url,
        public_url=public_url,
        parties=tuple(parties),
        admin_token=get("ADMIN_TOKEN") or None,
        allow_private_partner_urls=_bool("ALLOW_PRIVATE_PARTNER_URLS", get("ALLOW_PRIVATE_PARTNER_URLS")),
        http_timeout=_positive_float("HTTP_TIMEOUT", get("HTTP_TIMEOUT"), defaults.http_timeout),
        page_limit=int(_positive_float("PAGE_LIMIT", get("PAGE_LIMIT"), defaults.page_limit)),
        log_level=(get("LOG_LEVEL") or defaults.log_level).upper(),
        push_max_attempts=int(
            _positive_float("PUSH_MAX_ATTEMPTS", get("PUSH_MAX_ATTEMPTS"), defaults.push_max_attempts)
        ),
        push_max_age=_positive_float("PUSH_MAX_AGE", get("PUSH_MAX_AGE"), defaults.push_max_age),
        push_worker=_bool("PUSH_WORKER", get("PUSH_WORKER"), default=defaults.push_worker),
        sync_source=get("SYNC_SOURCE") or None,
        sync_interval=_positive_float("SYNC_INTERVAL", get("SYNC_INTERVAL"), defaults.sync_interval),
        sync_max_remove_share=_share(
            "SYNC_MAX_REMOVE_SHARE", get("SYNC_MAX_REMOVE_SHARE"), defaults.sync_max_remove_share
        ),
        sync_lenient=_bool("SYNC_LENIENT", get("SYNC_LENIENT")),
    )


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


def _bool(name: str, raw: str | None, *, default: bool = False) -> bool:
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{_PREFIX}{name}: {raw!r} is not a boolean (true/false)")


def _number(name: str, raw: str | None, default: float, valid: Callable[[float], bool], rule: str) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan  # valid for no rule
    if not valid(value):
        raise SettingsError(f"{_PREFIX}{name}: {raw!r} {rule}")
    return value


def _positive_float(name: str, raw: str | None, default: float) -> float:
    return _number(name, raw, default, lambda value: value > 0, "must be a positive number")


def _share(name: str, raw: str | None, default: float) -> float:
    return _number(name, raw, default, lambda value: 0 <= value <= 1, "must be a number from 0 to 1")
