"""registerLocation bodies (seed 002) and the OCPI Locations made of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from ocpi_hub.csms import location as csms
from ocpi_hub.evsevo.convert import ConversionError
from ocpi_hub.ocpi import locations as ocpi

NOW = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
PARTIES = [("NL", "OHB"), ("DE", "OHB")]


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "country_code": "NL",
        "party_id": "OHB",
        "name": "Stationsplein",
        "address": "Stationsplein 1",
        "city": "Utrecht",
        "postal_code": "3511 ED",
        "country": "NLD",
        "coordinates": {"latitude": "52.089444", "longitude": "5.110278"},
        "parking_type": "PARKING_LOT",
        "evses": [
            {
                "uid": "E1",
                "evse_id": "NL*OHB*E1",
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "max_voltage": 230,
                        "max_amperage": 32,
                    }
                ],
            }
        ],
    }
    return {**base, **changes}


def connector(**changes: Any) -> dict[str, Any]:
    return {**body()["evses"][0]["connectors"][0], **changes}


def evse(**changes: Any) -> dict[str, Any]:
    return {**body()["evses"][0], **changes}


def decode(raw: dict[str, Any]) -> csms.Location:
    return msgspec.json.decode(json.dumps(raw).encode(), type=csms.Location)


def convert(raw: dict[str, Any], location_id: str = "LOC-1") -> ocpi.Location:
    return csms.seed_location_to_ocpi(decode(raw), location_id=location_id, now=NOW, parties=PARTIES)


def test_a_registered_location_becomes_a_published_ocpi_location() -> None:
    location = convert(body())
    assert json.loads(ocpi.render(location)) == {
        "country_code": "NL",
        "party_id": "OHB",
        "id": "LOC-1",
        "publish": True,
        "name": "Stationsplein",
        "address": "Stationsplein 1",
        "city": "Utrecht",
        "postal_code": "3511 ED",
        "country": "NLD",
        "coordinates": {"latitude": "52.089444", "longitude": "5.110278"},
        "parking_type": "PARKING_LOT",
        "evses": [
            {
                "uid": "E1",
                "evse_id": "NL*OHB*E1",
                "status": "UNKNOWN",
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "max_voltage": 230,
                        "max_amperage": 32,
                        "last_updated": "2024-06-01T12:30:00Z",
                    }
                ],
                "last_updated": "2024-06-01T12:30:00Z",
            }
        ],
        "time_zone": "Europe/Amsterdam",
        "last_updated": "2024-06-01T12:30:00Z",
    }


def test_optional_members_may_be_null_or_absent() -> None:
    location = convert(body(name=None, postal_code=None, parking_type=None, evses=None))
    assert (location.name, location.postal_code, location.parking_type, location.evses) == (None, None, None, None)
    assert convert(body(evses=[])).evses is None


@pytest.mark.parametrize(("country", "alpha3"), [("NLD", "NLD"), ("NL", "NLD"), ("nl", "NLD")])
def test_country_alpha_2_or_3_becomes_alpha_3(country: str, alpha3: str) -> None:
    assert convert(body(country=country)).country == alpha3


def test_party_is_compared_case_insensitively_and_sent_upper_case() -> None:
    location = convert(body(country_code="nl", party_id="ohb"))
    assert (location.country_code, location.party_id) == ("NL", "OHB")


def test_time_zone_comes_from_the_coordinates() -> None:
    berlin = convert(body(country="DEU", coordinates={"latitude": "52.520008", "longitude": "13.404954"}))
    assert berlin.time_zone == "Europe/Berlin"


def test_every_2_2_1_connector_type_is_accepted() -> None:
    connectors = [connector(id=str(i), standard=t.value) for i, t in enumerate(ocpi.ConnectorType)]
    location = convert(body(evses=[evse(connectors=connectors)]))
    assert location.evses is not None
    assert [c.standard for c in location.evses[0].connectors] == list(ocpi.ConnectorType)


@pytest.mark.parametrize(
    ("changes", "path", "value", "rule"),
    [
        ({"party_id": "XYZ"}, "$.party_id", ("NL", "XYZ"), "is not one of our CPO parties"),
        ({"country_code": "BE"}, "$.party_id", ("BE", "OHB"), "is not one of our CPO parties"),
        ({"country": "XX"}, "$.country", "XX", "is not an ISO 3166-1 alpha-2 or alpha-3 code"),
        ({"country": "XYZ"}, "$.country", "XYZ", "is not an ISO 3166-1 alpha-2 or alpha-3 code"),
        (
            {"evses": [evse(connectors=[connector(standard="UNKNOWN")])]},
            "$.evses[0].connectors[0].standard",
            "UNKNOWN",
            "is not an OCPI ConnectorType: register the connector's real standard",
        ),
        (
            {"evses": [evse(connectors=[connector(standard="TYPE2")])]},
            "$.evses[0].connectors[0].standard",
            "TYPE2",
            "is not an OCPI 2.2.1 ConnectorType",
        ),
        (
            {"evses": [evse(), evse(uid="e1")]},
            "$.evses[1].uid",
            "e1",
            "is not unique within the location",
        ),
        (
            {"evses": [evse(connectors=[connector(), connector()])]},
            "$.evses[0].connectors[1].id",
            "1",
            "is not unique within the EVSE",
        ),
    ],
)
def test_conversion_errors(changes: dict[str, Any], path: str, value: object, rule: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert(body(**changes))
    assert (error.value.path, error.value.value, error.value.rule) == (path, value, rule)


@pytest.mark.parametrize(
    ("coordinates", "path"),
    [
        ({"latitude": "52.1", "longitude": "5.110278"}, "$.coordinates.latitude"),
        ({"latitude": "52,089444", "longitude": "5.110278"}, "$.coordinates.latitude"),
        ({"latitude": "52.089444", "longitude": "5"}, "$.coordinates.longitude"),
        ({"latitude": "52.089444", "longitude": "1234.11111"}, "$.coordinates.longitude"),
        ({"latitude": "0.000000", "longitude": "0.000000"}, "$.coordinates"),  # open sea
        ({"latitude": "95.000000", "longitude": "5.110278"}, "$.coordinates"),  # fits the pattern, not the globe
    ],
)
def test_coordinates_must_match_the_ocpi_patterns_and_have_a_time_zone(coordinates: dict[str, str], path: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert(body(coordinates=coordinates))
    assert error.value.path == path


def test_a_location_id_that_is_no_ci_string_36_is_an_error() -> None:
    with pytest.raises(ConversionError) as error:
        convert(body(), location_id="L" * 37)
    assert (error.value.path, error.value.value) == ("location_id", "L" * 37)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"country_code": "NLD"}, r"\$\.country_code"),
        ({"party_id": "OH"}, r"\$\.party_id"),
        ({"address": "x" * 256}, r"length <= 255 - at `\$\.address`"),
        ({"city": "x" * 46}, r"length <= 45 - at `\$\.city`"),
        ({"postal_code": "x" * 11}, r"\$\.postal_code"),
        ({"parking_type": "ROOFTOP"}, r"\$\.parking_type"),
        ({"coordinates": {"latitude": 52.089444, "longitude": 5.110278}}, r"\$\.coordinates\.latitude"),
        ({"evses": [evse(connectors=[])]}, r"length >= 1 - at `\$\.evses\[0\]\.connectors`"),
        ({"evses": [evse(connectors=[connector(power_type="AC_2_PHASE")])]}, r"power_type"),
        ({"evses": [evse(connectors=[connector(format="PLUG")])]}, r"format"),
        ({"evses": [evse(connectors=[connector(max_voltage=-1)])]}, r"max_voltage"),
        ({"evses": [evse(uid="u" * 37)]}, r"\$\.evses\[0\]\.uid"),
    ],
)
def test_bodies_that_break_the_schema_fail_to_decode_with_a_path(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        decode(body(**changes))


def test_the_seed_placeholder_body_is_rejected() -> None:
    placeholder = body(country_code="string", party_id="string", country="string")
    with pytest.raises(msgspec.ValidationError, match=r"\$\.country_code"):
        decode(placeholder)


def test_unknown_members_are_ignored() -> None:
    assert decode(body(operator="ignored")).address == "Stationsplein 1"
