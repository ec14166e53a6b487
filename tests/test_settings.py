"""Settings come from OCPI_HUB_* variables; a bad value names the variable and the rule."""

from __future__ import annotations

import pytest

from ocpi_hub.settings import Party, SettingsError, load_settings


def test_defaults_run_a_local_hub() -> None:
    settings = load_settings({})
    assert settings.database_url == "sqlite+aiosqlite:///ocpi-hub.db"
    assert settings.versions_url == "http://127.0.0.1:8000/ocpi/versions"
    assert settings.admin_token is None
    assert settings.allow_private_partner_urls is False


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
