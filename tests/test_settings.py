"""Settings come from OCPI_HUB_* variables; a bad value names the variable and the rule."""

from __future__ import annotations

import pytest

from ocpi_hub.settings import Party, Settings, SettingsError, load_settings


def test_defaults_run_a_local_hub() -> None:
    settings = load_settings({})
    assert settings.database_url == "sqlite+aiosqlite:///ocpi-hub.db"
    assert settings.versions_url == "http://127.0.0.1:8000/ocpi/versions"
    assert settings.admin_token is None
    assert settings.allow_private_partner_urls is False
    assert settings == Settings()


def test_empty_variables_keep_the_defaults() -> None:
    names = ["DATABASE_URL", "PUBLIC_URL", "ADMIN_TOKEN", "HTTP_TIMEOUT", "PAGE_LIMIT", "LOG_LEVEL", "SYNC_SOURCE"]
    assert load_settings({f"OCPI_HUB_{name}": "" for name in names}) == Settings()


def test_values_are_converted_to_their_types() -> None:
    settings = load_settings(
        {
            "OCPI_HUB_PAGE_LIMIT": " 50 ",
            "OCPI_HUB_HTTP_TIMEOUT": "2.5",
            "OCPI_HUB_LOG_LEVEL": "debug",
            "OCPI_HUB_DATABASE_URL": "postgresql://hub:secret@db.example.com/hub",
            "OCPI_HUB_ADMIN_TOKEN": "s3cret",
        }
    )
    assert (settings.page_limit, settings.http_timeout, settings.log_level) == (50, 2.5, "DEBUG")
    assert settings.database_url == "postgresql://hub:secret@db.example.com/hub"
    assert settings.admin_token == "s3cret"


@pytest.mark.parametrize(
    ("raw", "value"),
    [(spelling, True) for spelling in ["1", "true", "TRUE", "Yes", "on", " on "]]
    + [(spelling, False) for spelling in ["0", "false", "False", "no", "OFF", ""]],
)
def test_boolean_spellings(raw: str, value: bool) -> None:
    settings = load_settings({"OCPI_HUB_PUSH_WORKER": raw, "OCPI_HUB_SYNC_LENIENT": raw})
    assert (settings.push_worker, settings.sync_lenient) == (value, value)


@pytest.mark.parametrize("raw", ["0.5", "2.5", "1.5e0"])
def test_an_integer_setting_refuses_a_fraction(raw: str) -> None:
    with pytest.raises(SettingsError, match=rf"^OCPI_HUB_PAGE_LIMIT: '{raw}' must be a whole number >= 1$"):
        load_settings({"OCPI_HUB_PAGE_LIMIT": raw})


@pytest.mark.parametrize("raw", ["abc", "10 pages", "0x10"])
def test_a_number_setting_refuses_what_is_not_a_number(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"^OCPI_HUB_PUSH_MAX_ATTEMPTS: '{raw}' must be a whole number >= 1$"):
        load_settings({"OCPI_HUB_PUSH_MAX_ATTEMPTS": raw})
    with pytest.raises(SettingsError, match=f"^OCPI_HUB_PUSH_MAX_AGE: '{raw}' must be a number > 0$"):
        load_settings({"OCPI_HUB_PUSH_MAX_AGE": raw})


@pytest.mark.parametrize(("name", "raw"), [("PAGE_LIMIT", "-1"), ("PAGE_LIMIT", "0"), ("HTTP_TIMEOUT", "-0.5")])
def test_a_number_setting_refuses_a_negative_or_zero(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=f"^OCPI_HUB_{name}: '{raw}' must be a (whole )?number"):
        load_settings({f"OCPI_HUB_{name}": raw})


@pytest.mark.parametrize("raw", ["-0.1", "1.01", "nan"])
def test_a_share_is_from_0_to_1(raw: str) -> None:
    with pytest.raises(SettingsError, match=f"^OCPI_HUB_SYNC_MAX_REMOVE_SHARE: '{raw}' must be a number from 0 to 1$"):
        load_settings({"OCPI_HUB_SYNC_MAX_REMOVE_SHARE": raw})
    assert load_settings({"OCPI_HUB_SYNC_MAX_REMOVE_SHARE": "1"}).sync_max_remove_share == 1.0


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^OCPI_HUB_LOG_LEVEL: 'LOUD' must be one of .*DEBUG.*WARNING"):
        load_settings({"OCPI_HUB_LOG_LEVEL": "LOUD"})


@pytest.mark.parametrize("raw", ["not a url", "://nothing", "postgresql://hub:secret@db:port/hub"])
def test_a_malformed_database_url_is_refused_without_repeating_it(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^OCPI_HUB_DATABASE_URL: not a database URL") as refused:
        load_settings({"OCPI_HUB_DATABASE_URL": raw})
    assert raw not in str(refused.value)


@pytest.mark.parametrize("raw", ["mysql://hub:secret@db/hub", "sqlite:///ocpi-hub.db", "postgresql+psycopg://db/hub"])
def test_an_unsupported_database_backend_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^OCPI_HUB_DATABASE_URL: the backend '.*' is not supported") as refused:
        load_settings({"OCPI_HUB_DATABASE_URL": raw})
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///data/hub.db", "postgresql+asyncpg://db/hub", "postgresql://db/hub"]
)
def test_the_supported_database_backends(url: str) -> None:
    assert load_settings({"OCPI_HUB_DATABASE_URL": url}).database_url == url


def test_several_parties_and_normalisation() -> None:
    settings = load_settings(
        {
            "OCPI_HUB_COUNTRY_CODE": "nl",
            "OCPI_HUB_PARTY_ID": "tnm",
            "OCPI_HUB_BUSINESS_NAME": "The New Motion",
            "OCPI_HUB_EXTRA_PARTIES": '[{"country_code": "de", "party_id": "all", "business_name": "Allego"}]',
            "OCPI_HUB_PUBLIC_URL": "https://cpo.example.com/",
            "OCPI_HUB_ALLOW_PRIVATE_PARTNER_URLS": "TRUE",
        }
    )
    assert settings.parties == (Party("NL", "TNM", "The New Motion"), Party("DE", "ALL", "Allego"))
    assert settings.default_party.key == ("NL", "TNM")
    assert settings.party("de", "All") == Party("DE", "ALL", "Allego")
    assert settings.public_url == "https://cpo.example.com"
    assert settings.allow_private_partner_urls is True


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OCPI_HUB_COUNTRY_CODE": "XX"}, "OCPI_HUB_COUNTRY_CODE"),
        ({"OCPI_HUB_PARTY_ID": "TOOLONG"}, "party_id"),
        ({"OCPI_HUB_PUBLIC_URL": "ftp://x"}, "OCPI_HUB_PUBLIC_URL"),
        ({"OCPI_HUB_PUBLIC_URL": "https://x/ocpi"}, "without /ocpi"),
        ({"OCPI_HUB_EXTRA_PARTIES": "[{"}, "OCPI_HUB_EXTRA_PARTIES"),
        ({"OCPI_HUB_EXTRA_PARTIES": '[{"country_code": "NL"}]'}, "OCPI_HUB_EXTRA_PARTIES[0]"),
        ({"OCPI_HUB_EXTRA_PARTIES": '[{"country_code": "NL", "party_id": "OHB", "business_name": "x"}]'}, "once"),
        ({"OCPI_HUB_ALLOW_PRIVATE_PARTNER_URLS": "maybe"}, "ALLOW_PRIVATE_PARTNER_URLS"),
        ({"OCPI_HUB_HTTP_TIMEOUT": "-1"}, "OCPI_HUB_HTTP_TIMEOUT"),
        ({"OCPI_HUB_PAGE_LIMIT": "many"}, "OCPI_HUB_PAGE_LIMIT"),
        ({"OCPI_HUB_SYNC_MAX_REMOVE_SHARE": "half"}, "OCPI_HUB_SYNC_MAX_REMOVE_SHARE: 'half' must be a number"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace("[", r"\[").replace("]", r"\]")):
        load_settings(environ)
