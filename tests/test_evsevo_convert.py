"""EvseVO → OCPI conversion against the mapping contract (docs/evsevo-to-ocpi.md), table by table."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocpi_hub.evsevo.convert import (
    ConversionError,
    Converted,
    Mode,
    decode_location_record,
    evse_to_ocpi,
    location_to_ocpi,
    said_location_id,
)
from ocpi_hub.evsevo.models import EvseVO
from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi import tariffs as ocpi_tariffs
from ocpi_hub.ocpi.common import BusinessDetails

NOW = datetime(2024, 6, 1, tzinfo=UTC)
OUR_PARTIES = [("NL", "TNM"), ("DE", "ALL"), ("NL", "OHB")]
DEFAULT_PARTY = ("NL", "OHB")

# The seed's EvseVO example (seeds/000), verbatim.
SEED_EVSE: dict[str, Any] = {
    "uid": 4,
    "externalId": "01001188_1",
    "evseId": "NL*TNM*E01000401*0",
    "status": "Available",
    "authorizationMethods": "NewMotionApp",
    "updated": "10/06/2021 10:44:24",
    "deleted": "10/06/2021 10:44:24",
    "physicalReference": "Green",
    "connectors": [
        {
            "uid": 60,
            "externalId": "externalId6",
            "connectorType": "Tesla",
            "electricalProperties": {
                "powerType": "AC1Phase",
                "voltage": 110.62,
                "amperage": 46.4,
                "maxElectricPower": 232.04,
            },
            "fixedCable": False,
        }
    ],
}


def sent(obj: object) -> Any:
    return json.loads(ocpi.render(obj))


def evse_raw(**changes: Any) -> dict[str, Any]:
    """The seed's EVSE, not deleted, with a connector that raises no warning."""
    return {**SEED_EVSE, "deleted": None, "connectors": [connector_vo()], **changes}


def evse_vo(**changes: Any) -> EvseVO:
    return msgspec.convert(evse_raw(**changes), EvseVO)


def connector_vo(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uid": 1,
        "connectorType": "Type2",
        "electricalProperties": {"powerType": "AC3Phase", "voltage": 230, "amperage": 32, "maxElectricPower": 22},
        "fixedCable": False,
        "updated": "2020-04-08T23:33:18Z",
    }
    return {**base, **changes}


def convert_evse(mode: Mode = Mode.STRICT, country: str | None = "NLD", **changes: Any) -> Converted[ocpi.EVSE]:
    return evse_to_ocpi(evse_vo(**changes), country_alpha3=country, mode=mode)


def one_connector(mode: Mode = Mode.STRICT, country: str | None = "NLD", **changes: Any) -> ocpi.Connector:
    return convert_evse(mode, country, connectors=[connector_vo(**changes)]).value.connectors[0]


# --- §4.6 worked example -----------------------------------------------------------------------------------------


def test_the_seed_example_converts_exactly_as_the_worked_example() -> None:
    result = evse_to_ocpi(msgspec.convert(SEED_EVSE, EvseVO), country_alpha3="NLD")

    assert sent(result.value) == {
        "uid": "4",
        "evse_id": "NL*TNM*E01000401*0",
        "status": "REMOVED",
        "capabilities": ["REMOTE_START_STOP_CAPABLE"],
        "connectors": [
            {
                "id": "60",
                "standard": "TESLA_S",
                "format": "SOCKET",
                "power_type": "AC_1_PHASE",
                "max_voltage": 111,
                "max_amperage": 46,
                "max_electric_power": 232040,
                "last_updated": "2021-10-06T10:44:24Z",
            }
        ],
        "physical_reference": "Green",
        "last_updated": "2021-10-06T10:44:24Z",
    }
    assert len(result.warnings) == 2
    assert "$.connectors[0].fixedCable" in result.warnings[0]
    assert "SOCKET" in result.warnings[0]
    assert result.warnings[1].startswith("$.connectors[0].electricalProperties.maxElectricPower: 232.04")
    assert "about 45 times" in result.warnings[1]


def test_the_seed_example_without_deleted_is_available() -> None:
    assert convert_evse().value.status is ocpi.Status.AVAILABLE


# --- §4.2 status --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Available", ocpi.Status.AVAILABLE),
        ("Occupied", ocpi.Status.CHARGING),
        ("Unavailable", ocpi.Status.INOPERATIVE),
        ("Unknown", ocpi.Status.UNKNOWN),
        ("AVAILABLE", ocpi.Status.AVAILABLE),
        ("occupied", ocpi.Status.CHARGING),
        (None, ocpi.Status.UNKNOWN),
        ("", ocpi.Status.UNKNOWN),
    ],
)
def test_status_table(status: str | None, expected: ocpi.Status) -> None:
    result = convert_evse(status=status)
    assert result.value.status is expected
    assert not [w for w in result.warnings if ".status" in w]


@pytest.mark.parametrize("status", ["Available", "Occupied", "Unavailable", "Unknown", None, "Broken"])
def test_deleted_overrides_any_status(status: str | None) -> None:
    assert convert_evse(status=status, deleted="2021-10-07T00:00:00Z").value.status is ocpi.Status.REMOVED


def test_unknown_status_is_an_error_in_strict_mode_and_unknown_in_lenient_mode() -> None:
    with pytest.raises(ConversionError) as error:
        convert_evse(status="Broken")
    assert (error.value.path, error.value.value, error.value.rule) == ("$.status", "Broken", "is not a known status")
    assert str(error.value) == "$.status: 'Broken' is not a known status"

    lenient = convert_evse(Mode.LENIENT, status="Broken")
    assert lenient.value.status is ocpi.Status.UNKNOWN
    assert lenient.warnings == ("$.status: 'Broken' is not a known status; UNKNOWN used",)


def test_a_future_deletion_is_scheduled_when_a_reference_time_is_given() -> None:
    result = evse_to_ocpi(
        evse_vo(deleted="2024-07-01T00:00:00Z", updated="2024-05-01T00:00:00Z"), country_alpha3="NLD", now=NOW
    )
    assert result.value.status is ocpi.Status.AVAILABLE
    assert result.value.status_schedule == [
        ocpi.StatusSchedule(period_begin=datetime(2024, 7, 1, tzinfo=UTC), status=ocpi.Status.REMOVED)
    ]
    assert result.value.last_updated == datetime(2024, 5, 1, tzinfo=UTC)  # not the future date

    past = evse_to_ocpi(evse_vo(deleted="2024-05-02T00:00:00Z"), country_alpha3="NLD", now=NOW)
    assert past.value.status is ocpi.Status.REMOVED
    assert past.value.last_updated == datetime(2024, 5, 2, tzinfo=UTC)


# --- §4.3 authorizationMethods ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        ("RFIDToken", ["RFID_READER"]),
        ("NewMotionApp", ["REMOTE_START_STOP_CAPABLE"]),
        (["RFIDToken", "NewMotionApp", "rfidtoken"], ["REMOTE_START_STOP_CAPABLE", "RFID_READER"]),
        (["NewMotionApp", "RFIDToken"], ["REMOTE_START_STOP_CAPABLE", "RFID_READER"]),
        ("PnC", None),
        (None, None),
        ([], None),
    ],
)
def test_authorization_methods_table(methods: object, expected: list[str] | None) -> None:
    result = convert_evse(authorizationMethods=methods)
    assert sent(result.value).get("capabilities") == expected
    assert not [w for w in result.warnings if "authorizationMethods" in w]


def test_unknown_authorization_methods_are_ignored_with_a_warning_in_both_modes() -> None:
    for mode in Mode:
        result = convert_evse(mode, authorizationMethods=["RFIDToken", "CreditCard", 7])
        assert result.value.capabilities == [ocpi.Capability.RFID_READER]
        assert [w.split(":")[0] for w in result.warnings if "authorization" in w] == [
            "$.authorizationMethods[1]",
            "$.authorizationMethods[2]",
        ]


# --- §4.4 connectors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connector_type", "expected"),
    [
        ("Type1", ocpi.ConnectorType.IEC_62196_T1),
        ("SAEJ1772", ocpi.ConnectorType.IEC_62196_T1),
        ("Type1Combo", ocpi.ConnectorType.IEC_62196_T1_COMBO),
        ("Type2", ocpi.ConnectorType.IEC_62196_T2),
        ("Type2Combo", ocpi.ConnectorType.IEC_62196_T2_COMBO),
        ("Type3", ocpi.ConnectorType.IEC_62196_T3C),
        ("TepcoCHAdeMO", ocpi.ConnectorType.CHADEMO),
        ("Tesla", ocpi.ConnectorType.TESLA_S),
        ("Nema520", ocpi.ConnectorType.NEMA_5_20),
        ("type2", ocpi.ConnectorType.IEC_62196_T2),
        ("TYPE2COMBO", ocpi.ConnectorType.IEC_62196_T2_COMBO),
    ],
)
def test_connector_type_table(connector_type: str, expected: ocpi.ConnectorType) -> None:
    assert one_connector(connectorType=connector_type).standard is expected


@pytest.mark.parametrize(
    ("country", "expected"),
    [
        ("DEU", ocpi.ConnectorType.DOMESTIC_F),
        ("NLD", ocpi.ConnectorType.DOMESTIC_F),
        ("GRC", ocpi.ConnectorType.DOMESTIC_F),
        ("FRA", ocpi.ConnectorType.DOMESTIC_E),
        ("BEL", ocpi.ConnectorType.DOMESTIC_E),
        ("SVK", ocpi.ConnectorType.DOMESTIC_E),
        ("GBR", ocpi.ConnectorType.DOMESTIC_G),
        ("CYP", ocpi.ConnectorType.DOMESTIC_G),
        ("CHE", ocpi.ConnectorType.DOMESTIC_J),
        ("LIE", ocpi.ConnectorType.DOMESTIC_J),
        ("DNK", ocpi.ConnectorType.DOMESTIC_K),
        ("ITA", ocpi.ConnectorType.DOMESTIC_L),
        ("USA", ocpi.ConnectorType.DOMESTIC_B),
        ("MEX", ocpi.ConnectorType.DOMESTIC_B),
        ("AUS", ocpi.ConnectorType.DOMESTIC_I),
        ("NZL", ocpi.ConnectorType.DOMESTIC_I),
    ],
)
def test_domestic_by_country(country: str, expected: ocpi.ConnectorType) -> None:
    result = convert_evse(country=country, connectors=[connector_vo(connectorType="Domestic")])
    assert result.value.connectors[0].standard is expected
    assert not [w for w in result.warnings if "Domestic" in w]


@pytest.mark.parametrize("country", [None, "JPN"])
def test_domestic_without_a_known_country_is_domestic_f_with_a_warning(country: str | None) -> None:
    result = convert_evse(country=country, connectors=[connector_vo(connectorType="Domestic")])
    assert result.value.connectors[0].standard is ocpi.ConnectorType.DOMESTIC_F
    assert [w for w in result.warnings if w.startswith("$.connectors[0].connectorType: 'Domestic'")]


@pytest.mark.parametrize(
    ("connector_type", "amperage", "expected"),
    [
        ("Industrial3PEAc", 16, ocpi.ConnectorType.IEC_60309_2_three_16),
        ("Industrial3PEAc", 16.4, ocpi.ConnectorType.IEC_60309_2_three_16),
        ("Industrial3PEAc", 32, ocpi.ConnectorType.IEC_60309_2_three_32),
        ("Industrial3PENAc", 17, ocpi.ConnectorType.IEC_60309_2_three_32),
        ("Industrial3PENAc", 63, ocpi.ConnectorType.IEC_60309_2_three_64),
        ("Industrial3PENAc", 125, ocpi.ConnectorType.IEC_60309_2_three_64),
        ("IndustrialPneAc", 16, ocpi.ConnectorType.IEC_60309_2_single_16),
    ],
)
def test_industrial_by_amperage(connector_type: str, amperage: float, expected: ocpi.ConnectorType) -> None:
    props = {"powerType": "AC3Phase", "voltage": 230, "amperage": amperage}
    result = convert_evse(connectors=[connector_vo(connectorType=connector_type, electricalProperties=props)])
    assert result.value.connectors[0].standard is expected
    assert result.warnings == ()


def test_single_phase_industrial_over_16_amperes_warns() -> None:
    props = {"powerType": "AC1Phase", "voltage": 230, "amperage": 32}
    result = convert_evse(connectors=[connector_vo(connectorType="IndustrialPneAc", electricalProperties=props)])
    assert result.value.connectors[0].standard is ocpi.ConnectorType.IEC_60309_2_single_16
    assert result.warnings == ("$.connectors[0].electricalProperties.amperage: 32 exceeds IEC_60309_2_single_16",)


@pytest.mark.parametrize(
    ("connector_type", "rule"),
    [
        ("Avcon", "has no OCPI 2.2.1 ConnectorType"),
        ("Industrial2PDc", "has no OCPI 2.2.1 ConnectorType"),
        ("LPI", "has no OCPI 2.2.1 ConnectorType"),
        ("SPI", "has no OCPI 2.2.1 ConnectorType"),
        ("Unspecified", "has no OCPI 2.2.1 ConnectorType"),
        ("CCS", "is not a known connectorType"),
        (None, "is not a known connectorType"),
        (12, "is not a known connectorType"),
    ],
)
def test_unmappable_connector_types(connector_type: object, rule: str) -> None:
    connectors = [connector_vo(uid=1, connectorType="Type2"), connector_vo(uid=2, connectorType=connector_type)]
    with pytest.raises(ConversionError) as error:
        convert_evse(connectors=connectors)
    assert (error.value.path, error.value.value, error.value.rule) == (
        "$.connectors[1].connectorType",
        connector_type,
        rule,
    )

    lenient = convert_evse(Mode.LENIENT, connectors=connectors)
    assert [c.id for c in lenient.value.connectors] == ["1"]
    assert lenient.warnings == (f"$.connectors[1].connectorType: {connector_type!r} {rule}; connector left out",)


def test_lenient_mode_drops_an_evse_left_without_connectors() -> None:
    record = location_record(
        evses=[
            evse_raw(uid=1),
            evse_raw(uid=2, connectors=[connector_vo(connectorType="Avcon")]),
        ]
    )
    with pytest.raises(ConversionError, match="Avcon"):
        convert_location(record)
    result = convert_location(record, mode=Mode.LENIENT)
    assert [e.uid for e in result.value.evses or ()] == ["1"]
    assert result.warnings[-1].startswith("$.evses[1].connectors: 1 connectors, none that OCPI can show")
    assert result.warnings[-1].endswith("; EVSE left out")
    # Alone, the EVSE cannot be converted at all: there is nothing valid to return.
    with pytest.raises(ConversionError, match=r"\$\.connectors"):
        convert_evse(Mode.LENIENT, connectors=[connector_vo(connectorType="Avcon")])


@pytest.mark.parametrize(("fixed_cable", "expected"), [(True, "CABLE"), (False, "SOCKET"), (None, "SOCKET")])
def test_fixed_cable_is_the_format(fixed_cable: bool | None, expected: str) -> None:
    assert one_connector(fixedCable=fixed_cable).format == expected


def test_fixed_cable_that_is_no_boolean_is_an_error() -> None:
    with pytest.raises(ConversionError, match=r"\$\.connectors\[0\]\.fixedCable: 'yes' is not a boolean"):
        one_connector(fixedCable="yes")


@pytest.mark.parametrize(
    ("power_type", "expected"),
    [("AC1Phase", "AC_1_PHASE"), ("AC3Phase", "AC_3_PHASE"), ("DC", "DC"), ("dc", "DC")],
)
def test_power_type_table(power_type: str, expected: str) -> None:
    props = {"powerType": power_type, "voltage": 230, "amperage": 16}
    assert one_connector(electricalProperties=props).power_type == expected


@pytest.mark.parametrize("power_type", [None, "AC2Phase", 3])
def test_unknown_power_type_is_an_error(power_type: object) -> None:
    props = {"powerType": power_type, "voltage": 230, "amperage": 16}
    with pytest.raises(ConversionError) as error:
        one_connector(Mode.LENIENT, electricalProperties=props)
    assert error.value.path == "$.connectors[0].electricalProperties.powerType"


@pytest.mark.parametrize(
    ("voltage", "amperage", "expected"),
    [(230, 16, (230, 16)), (46.5, 46.5, (47, 47)), (110.62, 46.4, (111, 46)), (0.5, 2.5, (1, 3)), (399.5, 1, (400, 1))],
)
def test_voltage_and_amperage_round_half_up(voltage: float, amperage: float, expected: tuple[int, int]) -> None:
    c = one_connector(electricalProperties={"powerType": "AC1Phase", "voltage": voltage, "amperage": amperage})
    assert (c.max_voltage, c.max_amperage) == expected


@pytest.mark.parametrize("bad", [None, 0, 0.4, -230, float("nan"), float("inf"), "230", True, 2**40])
def test_voltage_must_be_a_positive_number(bad: object) -> None:
    props = {"powerType": "AC1Phase", "voltage": bad, "amperage": 16}
    with pytest.raises(ConversionError) as error:
        one_connector(Mode.LENIENT, electricalProperties=props)
    assert error.value.path == "$.connectors[0].electricalProperties.voltage"


@pytest.mark.parametrize(("kw", "watts"), [(3.7, 3700), (232.04, 232040), (11, 11000), (0.0015, 2), (150, 150000)])
def test_max_electric_power_is_kilowatts_to_watts(kw: float, watts: int) -> None:
    props = {"powerType": "DC", "voltage": 400, "amperage": 375, "maxElectricPower": kw}
    assert one_connector(electricalProperties=props).max_electric_power == watts


def test_max_electric_power_absent_is_not_computed() -> None:
    props = {"powerType": "AC3Phase", "voltage": 230, "amperage": 16}
    assert one_connector(electricalProperties=props).max_electric_power is None


@pytest.mark.parametrize("bad", [-1, "22", float("nan"), False])
def test_a_bad_max_electric_power_is_left_out_with_a_warning(bad: object) -> None:
    props = {"powerType": "AC3Phase", "voltage": 230, "amperage": 16, "maxElectricPower": bad}
    result = convert_evse(connectors=[connector_vo(electricalProperties=props)])
    assert result.value.connectors[0].max_electric_power is None
    assert result.warnings[0].startswith("$.connectors[0].electricalProperties.maxElectricPower:")
    assert result.warnings[0].endswith("; left out")


def test_plausibility_warnings() -> None:
    props = {"powerType": "AC3Phase", "voltage": 400, "amperage": 32, "maxElectricPower": 22}
    result = convert_evse(
        connectors=[connector_vo(connectorType="Type2Combo", fixedCable=True, electricalProperties=props)]
    )
    assert [w.split(":")[0] for w in result.warnings] == [
        "$.connectors[0].electricalProperties.voltage",
        "$.connectors[0].electricalProperties.powerType",
    ]


def test_connector_ids_uid_then_external_id_and_unique() -> None:
    result = convert_evse(connectors=[connector_vo(uid=None, externalId="01000861_1_21"), connector_vo(uid=7)])
    assert [c.id for c in result.value.connectors] == ["01000861_1_21", "7"]
    with pytest.raises(ConversionError, match=r"\$\.connectors\[0\]\.uid: None is required"):
        convert_evse(connectors=[connector_vo(uid=None)])
    with pytest.raises(ConversionError, match=r"\$\.connectors\[1\]: '7' repeats the id"):
        convert_evse(connectors=[connector_vo(uid=7), connector_vo(uid=None, externalId="7")])


def test_deleted_connectors_are_left_out_unless_the_evse_is_removed() -> None:
    gone = connector_vo(uid=2, deleted="2021-01-01T00:00:00Z")
    result = convert_evse(connectors=[connector_vo(uid=1), gone])
    assert [c.id for c in result.value.connectors] == ["1"]
    assert result.value.last_updated == datetime(2021, 10, 6, 10, 44, 24, tzinfo=UTC)

    removed = convert_evse(deleted="2022-01-01T00:00:00Z", connectors=[gone])
    assert removed.value.status is ocpi.Status.REMOVED
    assert [c.id for c in removed.value.connectors] == ["2"]

    with pytest.raises(ConversionError, match=r"\$\.connectors: 1 connectors, none"):
        convert_evse(connectors=[gone])


@pytest.mark.parametrize("connectors", [None, []])
def test_an_evse_needs_connectors(connectors: list[Any] | None) -> None:
    with pytest.raises(ConversionError, match=r"\$\.connectors: .* is required"):
        convert_evse(connectors=connectors)


# --- §4.1 EVSE fields ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({"uid": 4}, "4"),
        ({"uid": "NL*MKS*E0000001*0_1"}, "NL*MKS*E0000001*0_1"),
        ({"uid": None, "externalId": "01001188_1"}, "01001188_1"),
        ({"uid": None, "externalId": None}, "NL*TNM*E01000401*0"),
    ],
)
def test_evse_uid_fallbacks(ids: dict[str, Any], expected: str) -> None:
    assert convert_evse(**ids).value.uid == expected


@pytest.mark.parametrize(
    ("ids", "path"),
    [
        ({"uid": None, "externalId": None, "evseId": None}, "$.uid"),
        ({"uid": 4.5}, "$.uid"),
        ({"uid": "x" * 37}, "$.uid"),
        ({"uid": "é"}, "$.uid"),
    ],
)
def test_evse_uid_errors(ids: dict[str, Any], path: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert_evse(Mode.LENIENT, **ids)
    assert error.value.path == path


def test_evse_id_and_physical_reference_too_long() -> None:
    changes: dict[str, Any] = {"evseId": "NL*TNM*E" + "1" * 41, "physicalReference": "x" * 17}
    with pytest.raises(ConversionError, match=r"\$\.evseId: .* is longer than 48 characters"):
        convert_evse(**changes)
    lenient = convert_evse(Mode.LENIENT, **changes)
    assert (lenient.value.evse_id, lenient.value.physical_reference) == (None, None)
    assert [w.split(":")[0] for w in lenient.warnings if w.endswith("left out")] == [
        "$.evseId",
        "$.physicalReference",
    ]


# --- §4.5 dates ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10/06/2021 10:44:24", datetime(2021, 10, 6, 10, 44, 24, tzinfo=UTC)),
        ("12/06/2021 10:44:24", datetime(2021, 12, 6, 10, 44, 24, tzinfo=UTC)),
        ("2020-04-08T23:33:18Z", datetime(2020, 4, 8, 23, 33, 18, tzinfo=UTC)),
        ("2020-04-08T23:33:18", datetime(2020, 4, 8, 23, 33, 18, tzinfo=UTC)),
        ("2021-10-06T12:44:24+02:00", datetime(2021, 10, 6, 10, 44, 24, tzinfo=UTC)),
        # The mapping document keeps milliseconds; the hub emits whole seconds everywhere (README), truncated.
        ("2024-07-17T07:36:57.985998Z", datetime(2024, 7, 17, 7, 36, 57, tzinfo=UTC)),
        ("2024-07-17T07:36:57.999Z", datetime(2024, 7, 17, 7, 36, 57, tzinfo=UTC)),
        ("2020-04-08t23:33:18z", datetime(2020, 4, 8, 23, 33, 18, tzinfo=UTC)),
        ("2020-04-08 23:33:18Z", datetime(2020, 4, 8, 23, 33, 18, tzinfo=UTC)),
        ("10/06/2021 9:44:24", datetime(2021, 10, 6, 9, 44, 24, tzinfo=UTC)),
    ],
)
def test_date_vectors(raw: str, expected: datetime) -> None:
    assert convert_evse(updated=raw).value.last_updated == expected


@pytest.mark.parametrize(
    "raw",
    [
        "13/06/2021 10:44:24",
        "06-10-2021",
        "2021-02-30T10:00:00Z",
        "2021-10-06T24:00:00Z",
        "2021-10-06T10:44:24+02",
        "yesterday",
        1633516800,
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_dates_rejected_in_every_mode(raw: object) -> None:
    with pytest.raises(ConversionError) as error:
        convert_evse(Mode.LENIENT, updated=raw)
    assert (error.value.path, error.value.value) == ("$.updated", raw)


def test_connector_last_updated_falls_back_to_the_evse() -> None:
    own, inherited = convert_evse(connectors=[connector_vo(uid=1), connector_vo(uid=2, updated=None)]).value.connectors
    assert own.last_updated == datetime(2020, 4, 8, 23, 33, 18, tzinfo=UTC)
    assert inherited.last_updated == datetime(2021, 10, 6, 10, 44, 24, tzinfo=UTC)
    with pytest.raises(ConversionError, match=r"\$\.connectors\[1\]\.updated: None is required"):
        convert_evse(updated=None, connectors=[connector_vo(uid=1), connector_vo(uid=2, updated=None)])


def test_evse_last_updated_is_the_latest_date_of_the_evse_and_its_connectors() -> None:
    result = convert_evse(updated="2020-01-01T00:00:00Z", connectors=[connector_vo(updated="2022-03-04T05:06:07Z")])
    assert result.value.last_updated == datetime(2022, 3, 4, 5, 6, 7, tzinfo=UTC)
    with pytest.raises(ConversionError, match=r"\$\.updated: None is required"):
        convert_evse(updated=None, deleted=None, connectors=[connector_vo(updated=None)])


# --- §5.2 Location ------------------------------------------------------------------------------------------------


def location_record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uid": 2459405,
        "externalId": "DEALLEGO000826",
        "coordinates": {"latitude": 52.1438139, "longitude": 5.1},
        "operatorName": "Allego",
        "address": {"streetAndNumber": "Stationsplein 1", "postalCode": "3511 ED", "city": "Utrecht", "country": "NLD"},
        "updated": "2020-04-08T23:33:18Z",
        "evses": [evse_raw()],
    }
    return {**base, **changes}


def convert_location(
    raw: dict[str, Any], *, mode: Mode = Mode.STRICT, location_id: str | None = None
) -> Converted[ocpi.Location]:
    return location_to_ocpi(
        decode_location_record(raw),
        location_id=location_id,
        parties=OUR_PARTIES,
        default_party=DEFAULT_PARTY,
        mode=mode,
        now=NOW,
    )


def test_a_location_record() -> None:
    result = convert_location(location_record())
    location = sent(result.value)
    del location["evses"]
    assert location == {
        "country_code": "NL",
        "party_id": "TNM",
        "id": "2459405",
        "publish": True,
        "address": "Stationsplein 1",
        "city": "Utrecht",
        "postal_code": "3511 ED",
        "country": "NLD",
        "coordinates": {"latitude": "52.143814", "longitude": "5.100000"},
        "operator": {"name": "Allego"},
        "time_zone": "Europe/Amsterdam",
        "last_updated": "2021-10-06T10:44:24Z",
    }
    assert ocpi.checked(result.value) == result.value


def test_location_last_updated_is_the_latest_of_the_record_and_its_evses() -> None:
    later = convert_location(location_record(updated="2023-01-01T00:00:00Z"))
    assert later.value.last_updated == datetime(2023, 1, 1, tzinfo=UTC)
    without_evses = convert_location(location_record(evses=None))
    assert without_evses.value.last_updated == datetime(2020, 4, 8, 23, 33, 18, tzinfo=UTC)
    assert without_evses.value.evses is None
    with pytest.raises(ConversionError, match=r"\$\.updated: None is required"):
        convert_location(location_record(updated=None, evses=[]))


def test_location_id_is_uid_then_external_id_and_must_match_the_given_id() -> None:
    assert convert_location(location_record(uid=None)).value.id == "DEALLEGO000826"
    assert convert_location(location_record(), location_id="2459405").value.id == "2459405"
    assert convert_location(location_record(uid=None, externalId=None), location_id="L-9").value.id == "L-9"
    with pytest.raises(ConversionError) as error:
        convert_location(location_record(), location_id="OTHER")
    assert (error.value.path, error.value.value) == ("$.uid", "2459405")
    with pytest.raises(ConversionError, match=r"\$\.uid: None is required"):
        convert_location(location_record(uid=None, externalId=None))
    with pytest.raises(ConversionError, match="location_id"):
        convert_location(location_record(uid=None, externalId=None), location_id="x" * 37)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"countryCode": "DE", "partyId": "ALL", "operatorId": "NL-TNM"}, ("DE", "ALL")),
        ({"countryCode": "de", "partyId": "all"}, ("DE", "ALL")),
        ({"operatorId": "DE-ALL"}, ("DE", "ALL")),
        ({"operatorId": "DE*ALL"}, ("DE", "ALL")),
        ({"countryCode": "DE", "operatorId": "DE-ALL"}, ("DE", "ALL")),
        ({}, ("NL", "TNM")),  # the evseId prefix NL*TNM*E…
    ],
)
def test_party_from_the_record(names: dict[str, str], expected: tuple[str, str]) -> None:
    value = convert_location(location_record(**names)).value
    assert (value.country_code, value.party_id) == expected


def test_party_from_the_first_evse_that_has_an_evse_id() -> None:
    evses = [
        evse_raw(uid=1, evseId=None),
        evse_raw(uid=2, evseId="DEALLE123"),
    ]
    value = convert_location(location_record(evses=evses)).value
    assert (value.country_code, value.party_id) == ("DE", "ALL")


def test_default_party_when_the_record_names_none() -> None:
    evses = [evse_raw(evseId=None)]
    value = convert_location(location_record(evses=evses)).value
    assert (value.country_code, value.party_id) == DEFAULT_PARTY


@pytest.mark.parametrize(
    ("names", "path", "value"),
    [
        ({"countryCode": "BE", "partyId": "BEC"}, "$.partyId", ("BE", "BEC")),
        ({"operatorId": "AT-HTB"}, "$.operatorId", "AT-HTB"),
        ({"evses": [evse_raw(evseId="BE*BEC*E041503001")]}, "$.evses[0].evseId", None),
    ],
)
def test_a_party_that_is_not_ours_is_an_error(names: dict[str, Any], path: str, value: object) -> None:
    with pytest.raises(ConversionError) as error:
        convert_location(location_record(**names))
    assert (error.value.path, error.value.rule) == (path, "is not one of our CPO parties")
    if value is not None:
        assert error.value.value == value


@pytest.mark.parametrize(
    ("names", "path"),
    [({"operatorId": "ALLEGO"}, "$.operatorId"), ({"countryCode": "DEU", "partyId": "ALL"}, "$.countryCode")],
)
def test_a_malformed_party_is_an_error(names: dict[str, str], path: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert_location(location_record(**names))
    assert error.value.path == path


@pytest.mark.parametrize(("country", "expected"), [("NLD", "NLD"), ("NL", "NLD"), ("nl", "NLD"), ("deu", "DEU")])
def test_country_alpha_2_or_3_becomes_alpha_3(country: str, expected: str) -> None:
    address = {"streetAndNumber": "Stationsplein 1", "city": "Utrecht", "country": country}
    assert convert_location(location_record(address=address)).value.country == expected


@pytest.mark.parametrize("country", [None, "XX", "Netherlands", 528])
def test_a_country_that_is_not_iso_3166_is_an_error(country: object) -> None:
    address = {"streetAndNumber": "Stationsplein 1", "city": "Utrecht", "country": country}
    with pytest.raises(ConversionError) as error:
        convert_location(location_record(address=address))
    assert (error.value.path, error.value.value) == ("$.address.country", country)


@pytest.mark.parametrize(
    ("coordinates", "expected"),
    [
        ({"latitude": 52.1438139, "longitude": 5.1}, ("52.143814", "5.100000")),
        ({"latitude": 52, "longitude": 5}, ("52.000000", "5.000000")),
        ({"latitude": 51.0475995, "longitude": 3.7299445}, ("51.047600", "3.729945")),  # half up
        ({"latitude": 52.09, "longitude": 1e-7}, ("52.090000", "0.000000")),
        ({"latitude": 64.1466, "longitude": -21.9426}, ("64.146600", "-21.942600")),
    ],
)
def test_coordinates_have_six_decimals(coordinates: dict[str, float], expected: tuple[str, str]) -> None:
    value = convert_location(location_record(coordinates=coordinates)).value
    assert (value.coordinates.latitude, value.coordinates.longitude) == expected


@pytest.mark.parametrize(
    ("coordinates", "path"),
    [
        (None, "$.coordinates"),
        ({"latitude": 91, "longitude": 5}, "$.coordinates.latitude"),
        ({"latitude": 52, "longitude": "5.1"}, "$.coordinates.longitude"),
        ({"latitude": 52}, "$.coordinates.longitude"),
        ({"latitude": 0, "longitude": 0}, "$.coordinates"),  # open sea: no time zone
    ],
)
def test_bad_coordinates(coordinates: dict[str, Any] | None, path: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert_location(location_record(coordinates=coordinates))
    assert error.value.path == path


def test_time_zone_comes_from_the_coordinates() -> None:
    berlin = convert_location(location_record(coordinates={"latitude": 52.52, "longitude": 13.405}))
    assert berlin.value.time_zone == "Europe/Berlin"


def test_address_lengths() -> None:
    long_street = {"streetAndNumber": "s" * 256, "city": "c" * 46, "country": "NLD"}
    with pytest.raises(ConversionError, match=r"\$\.address\.streetAndNumber: .* is longer than 255"):
        convert_location(location_record(address=long_street))
    lenient = convert_location(location_record(address=long_street), mode=Mode.LENIENT)
    assert (lenient.value.address, lenient.value.city) == ("s" * 255, "c" * 45)
    assert [w.split(":")[0] for w in lenient.warnings] == ["$.address.streetAndNumber", "$.address.city"]
    fits = {"streetAndNumber": "s" * 255, "city": "c" * 45, "country": "NLD", "postalCode": "12345678901"}
    result = convert_location(location_record(address=fits))
    assert (len(result.value.address), result.value.postal_code) == (255, None)
    assert result.warnings == ("$.address.postalCode: '12345678901' is longer than 10 characters; left out",)


@pytest.mark.parametrize(
    ("address", "path"),
    [
        (None, "$.address"),
        ({"city": "Utrecht", "country": "NLD"}, "$.address.streetAndNumber"),
        ({"streetAndNumber": "Stationsplein 1", "country": "NLD"}, "$.address.city"),
        ({"streetAndNumber": "Line\nbreak", "city": "Utrecht", "country": "NLD"}, "$.address.streetAndNumber"),
        ({"streetAndNumber": "Lone \ud800", "city": "Utrecht", "country": "NLD"}, "$.address.streetAndNumber"),
    ],
)
def test_address_is_required_and_printable(address: dict[str, str] | None, path: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert_location(location_record(address=address), mode=Mode.LENIENT)
    assert error.value.path == path


def test_operator_and_suboperator() -> None:
    value = convert_location(location_record(operatorName="Allego", suboperatorName="Allego Sub")).value
    assert (value.operator, value.suboperator) == (
        BusinessDetails(name="Allego"),
        BusinessDetails(name="Allego Sub"),
    )
    result = convert_location(location_record(operatorName=None, suboperatorName="x" * 101))
    assert (result.value.operator, result.value.suboperator) == (None, None)
    assert result.warnings[0].startswith("$.suboperatorName:")


def test_restricted_accessibility_is_published_with_a_warning() -> None:
    result = convert_location(location_record(accessibility={"status": "Restricted", "remark": "Residents only"}))
    assert result.value.publish is True
    assert result.warnings[0].startswith("$.accessibility.status: 'Restricted'")


def hours(*entries: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"weekDay": d, "startTime": b, "endTime": e} for d, b, e in entries]


def test_opening_hours_map_weekdays() -> None:
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "sun"]
    opening = convert_location(location_record(openingHours=hours(*((d, "08:00", "20:00") for d in days))))
    assert sent(opening.value)["opening_times"] == {
        "twentyfourseven": False,
        "regular_hours": [{"weekday": i, "period_begin": "08:00", "period_end": "20:00"} for i in range(1, 8)],
    }


def test_overnight_opening_hours_are_split() -> None:
    opening = convert_location(
        location_record(openingHours=hours(("Sun", "22:00", "06:00"), ("Fri", "18:00", "00:00")))
    )
    assert sent(opening.value)["opening_times"]["regular_hours"] == [
        {"weekday": 1, "period_begin": "00:00", "period_end": "06:00"},
        {"weekday": 5, "period_begin": "18:00", "period_end": "23:59"},
        {"weekday": 7, "period_begin": "22:00", "period_end": "23:59"},
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"openTwentyFourSeven": True},
        {"openTwentyFourSeven": True, "openingHours": hours(("Mon", "08:00", "10:00"))},
        {"openingHours": hours(*((d, "00:00", "23:59") for d in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]))},
    ],
)
def test_twentyfourseven(changes: dict[str, Any]) -> None:
    assert sent(convert_location(location_record(**changes)).value)["opening_times"] == {"twentyfourseven": True}


@pytest.mark.parametrize(
    "entries",
    [
        hours(("Mon", "08:00", "20:00"), ("Funday", "08:00", "20:00")),
        hours(("Mon", "8:00", "20:00")),
        hours(("Mon", "08:00", "24:00")),
    ],
)
def test_bad_opening_hours_are_left_out_with_a_warning(entries: list[dict[str, str]]) -> None:
    result = convert_location(location_record(openingHours=entries))
    assert result.value.opening_times is None
    assert result.warnings[0].startswith("$.openingHours[")


def test_evse_uids_are_unique_within_the_location() -> None:
    evses = [evse_raw(), evse_raw(uid=None, externalId="4")]
    with pytest.raises(ConversionError, match=r"\$\.evses\[1\]: '4' repeats the uid"):
        convert_location(location_record(evses=evses))


def test_domestic_uses_the_location_country() -> None:
    evse = evse_raw(connectors=[connector_vo(connectorType="Domestic")])
    address = {"streetAndNumber": "Rue 1", "city": "Paris", "country": "FR"}
    coordinates = {"latitude": 48.8566, "longitude": 2.3522}
    value = convert_location(location_record(address=address, coordinates=coordinates, evses=[evse])).value
    assert value.evses is not None
    assert value.evses[0].connectors[0].standard is ocpi.ConnectorType.DOMESTIC_E


def test_decode_location_record() -> None:
    raw = msgspec.json.encode(location_record())
    assert decode_location_record(raw) == decode_location_record(location_record())
    for bad in [b"[1, 2]", b"{not json", {"evses": {"uid": 1}}, "a string", {"coordinates": [52, 5]}]:
        with pytest.raises(ConversionError) as error:
            decode_location_record(bad)
        assert error.value.path == "$"


# --- §5.3 Tariffs (our rules: the module docstring of ocpi_hub.evsevo.convert) -----------------------------------

EUR_PRICES: dict[str, Any] = {"startFee": 0.5, "perMinute": 0.05, "perKWh": 0.25, "currency": "EUR"}


def with_tariffs(*tariffs: object, **changes: Any) -> dict[str, Any]:
    """The location record with one EVSE whose connectors (uids 1, 2, ...) carry these tariffs (None: no member)."""
    connectors = [
        connector_vo(uid=i, **({} if tariff is None else {"tariff": tariff})) for i, tariff in enumerate(tariffs, 1)
    ]
    return location_record(evses=[evse_raw(connectors=connectors)], **changes)


def tariff_ids(result: Converted[ocpi.Location]) -> list[list[str] | None]:
    assert result.value.evses is not None
    return [c.tariff_ids for e in result.value.evses for c in e.connectors]


def expected_id(*canonical: object) -> str:
    """The documented recipe, so that a change of the canonical form (which renames every tariff) shows here."""
    digest = hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()
    return "EVSEVO-" + digest[:29]


def test_start_fee_energy_and_minute_prices_become_flat_energy_and_time_per_hour() -> None:
    result = convert_location(with_tariffs({**EUR_PRICES, "structure": "Default", "updatedBy": "Operator"}))

    tariff_id = expected_id("NL", "TNM", "EUR", [["FLAT", "0.5"], ["ENERGY", "0.25"], ["TIME", "3"]])
    assert len(tariff_id) == 36
    assert [sent(t) for t in result.tariffs] == [
        {
            "country_code": "NL",
            "party_id": "TNM",
            "id": tariff_id,
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [
                        {"type": "FLAT", "price": 0.5, "step_size": 1},
                        {"type": "ENERGY", "price": 0.25, "step_size": 1},
                        {"type": "TIME", "price": 3.0, "step_size": 1},  # 0.05 per minute
                    ]
                }
            ],
            "last_updated": "2024-06-01T00:00:00Z",
        }
    ]
    assert sent(result.value)["evses"][0]["connectors"][0]["tariff_ids"] == [tariff_id]
    assert result.warnings == ()


@pytest.mark.parametrize(
    ("per_minute", "per_hour"),
    [(0.05, "3"), (0.07, "4.2"), (0.1, "6"), (0.0125, "0.75"), (1, "60"), (0.333, "19.98")],
)
def test_the_hourly_price_is_computed_in_decimal(per_minute: float, per_hour: str) -> None:
    # In binary floating point 0.07 * 60 is 4.200000000000001.
    result = convert_location(with_tariffs({"perMinute": per_minute, "currency": "EUR"}))
    (component,) = result.tariffs[0].elements[0].price_components
    assert component.type is ocpi_tariffs.TariffDimensionType.TIME
    assert component.price == float(Decimal(per_hour))
    assert result.tariffs[0].id == expected_id("NL", "TNM", "EUR", [["TIME", per_hour]])


def test_connectors_with_the_same_prices_share_one_tariff() -> None:
    same = [EUR_PRICES, {**EUR_PRICES, "startFee": 0.50, "perKWh": 0.250, "currency": "eur"}, EUR_PRICES]
    raw = with_tariffs(*same)
    raw["evses"].append(evse_raw(uid=5, connectors=[connector_vo(uid=9, tariff=EUR_PRICES)]))
    result = convert_location(raw)
    assert len(result.tariffs) == 1
    assert tariff_ids(result) == [[result.tariffs[0].id]] * 4
    assert result.tariffs[0].currency == "EUR"


def test_zero_and_absent_prices_are_left_out_and_give_the_same_id() -> None:
    zeros = {"startFee": 0, "perMinute": 0.0, "perKWh": 0.3, "currency": "EUR"}
    result = convert_location(with_tariffs({"perKWh": 0.3, "currency": "EUR"}, zeros))
    assert len(result.tariffs) == 1
    assert [sent(c) for c in result.tariffs[0].elements[0].price_components] == [
        {"type": "ENERGY", "price": 0.3, "step_size": 1}
    ]
    assert tariff_ids(result)[0] == tariff_ids(result)[1]


@pytest.mark.parametrize(
    "prices",
    [
        {"currency": "EUR"},
        {"startFee": 0, "perMinute": 0.0, "perKWh": 0, "currency": "EUR"},
        {"startFee": "", "perKWh": None, "currency": "EUR"},
    ],
)
def test_a_tariff_without_a_price_above_zero_is_free_of_charge(prices: dict[str, Any]) -> None:
    (tariff,) = convert_location(with_tariffs(prices)).tariffs
    # OCPI's free of charge: one element, no restrictions, one FLAT component of 0 (docs/cpo-modules.md §3.5).
    assert sent(tariff)["elements"] == [{"price_components": [{"type": "FLAT", "price": 0.0, "step_size": 1}]}]
    assert tariff.id == expected_id("NL", "TNM", "EUR", [["FLAT", "0"]])


def test_the_tariff_belongs_to_the_location_party_and_the_party_is_in_its_id() -> None:
    ours = convert_location(with_tariffs(EUR_PRICES)).tariffs[0]
    theirs = convert_location(with_tariffs(EUR_PRICES, countryCode="DE", partyId="ALL")).tariffs[0]
    assert (ours.country_code, ours.party_id) == ("NL", "TNM")
    assert (theirs.country_code, theirs.party_id) == ("DE", "ALL")
    assert ours.id != theirs.id


@pytest.mark.parametrize(
    "change",
    [{"startFee": 0.51}, {"perMinute": 0.06}, {"perKWh": 0.26}, {"perKWh": None}, {"currency": "GBP"}],
)
def test_a_price_change_gives_a_new_tariff_id(change: dict[str, Any]) -> None:
    before = convert_location(with_tariffs(EUR_PRICES)).tariffs[0].id
    after = convert_location(with_tariffs({**EUR_PRICES, **change})).tariffs[0].id
    assert after != before
    assert after.startswith("EVSEVO-")


def test_the_tariff_id_does_not_depend_on_the_time_of_conversion() -> None:
    record = decode_location_record(with_tariffs(EUR_PRICES))
    later = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    a, b = (
        location_to_ocpi(record, location_id=None, parties=OUR_PARTIES, default_party=DEFAULT_PARTY, now=now).tariffs[0]
        for now in (NOW, later)
    )
    assert a.id == b.id
    assert (a.last_updated, b.last_updated) == (NOW, later.replace(microsecond=0))


def test_a_connector_without_a_tariff_has_no_tariff_ids() -> None:
    result = convert_location(with_tariffs(None, EUR_PRICES))
    assert tariff_ids(result) == [None, [result.tariffs[0].id]]
    assert "tariff_ids" not in sent(result.value)["evses"][0]["connectors"][0]
    assert convert_location(location_record()).tariffs == ()
    explicit_null = convert_location(location_record(evses=[evse_raw(connectors=[connector_vo(tariff=None)])]))
    assert (explicit_null.tariffs, tariff_ids(explicit_null)) == ((), [None])


BAD_TARIFFS = [
    ({"currency": "XYZ"}, "currency", "XYZ", "is not an ISO 4217 currency code"),
    ({"currency": "EURO"}, "currency", "EURO", "is not an ISO 4217 currency code"),
    ({"currency": 978}, "currency", 978, "is not an ISO 4217 currency code"),
    ({"currency": None}, "currency", None, "is required"),
    ({"startFee": -0.5}, "startFee", -0.5, "is not a number in [0, 2147483647]"),
    ({"perMinute": -1}, "perMinute", -1, "is not a number in [0, 2147483647]"),
    ({"startFee": 1e300}, "startFee", 1e300, "is not a number in [0, 2147483647]"),
    ({"perKWh": "0.30"}, "perKWh", "0.30", "is not a number"),
    ({"perKWh": True}, "perKWh", True, "is not a number"),
]


@pytest.mark.parametrize(("change", "member", "value", "rule"), BAD_TARIFFS)
def test_strict_rejects_a_bad_tariff_naming_the_path(
    change: dict[str, Any], member: str, value: Any, rule: str
) -> None:
    with pytest.raises(ConversionError) as error:
        convert_location(with_tariffs(EUR_PRICES, {**EUR_PRICES, **change}))
    path = f"$.evses[0].connectors[1].tariff.{member}"
    assert (error.value.path, error.value.value, error.value.rule) == (path, value, rule)


@pytest.mark.parametrize(("change", "member", "value", "rule"), BAD_TARIFFS)
def test_lenient_leaves_a_bad_tariff_out_with_a_warning(
    change: dict[str, Any], member: str, value: Any, rule: str
) -> None:
    result = convert_location(with_tariffs(EUR_PRICES, {**EUR_PRICES, **change}), mode=Mode.LENIENT)
    assert tariff_ids(result) == [[result.tariffs[0].id], None]
    assert len(result.tariffs) == 1
    assert result.warnings == (f"$.evses[0].connectors[1].tariff.{member}: {value!r} {rule}; tariff left out",)


def test_a_tariff_of_the_wrong_shape_fails_decoding_like_any_nested_object() -> None:
    with pytest.raises(ConversionError) as error:
        decode_location_record(with_tariffs("EUR 0.30/kWh"))
    assert error.value.path == "$"
    assert "`$.evses[0].connectors[0].tariff`" in error.value.rule


def test_evse_to_ocpi_leaves_tariffs_to_the_location() -> None:
    result = convert_evse(connectors=[connector_vo(tariff=EUR_PRICES)])
    assert result.value.connectors[0].tariff_ids is None
    assert result.tariffs == ()


def test_every_produced_tariff_is_a_valid_ocpi_tariff() -> None:
    prices = [
        EUR_PRICES,
        {"currency": "SEK"},
        {"perKWh": 4.5, "currency": "sek"},
        {"perMinute": 0.07, "currency": "CHF"},
    ]
    result = convert_location(with_tariffs(*prices))
    assert len(result.tariffs) == 4
    for tariff in result.tariffs:
        assert msgspec.json.decode(ocpi_tariffs.render(tariff), type=ocpi_tariffs.Tariff) == tariff
    assert {i for ids in tariff_ids(result) for i in ids or ()} == {t.id for t in result.tariffs}


# --- Properties: any input gives a valid OCPI object or a ConversionError, nothing else ---------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3), max_leaves=6
)


def one_in(n: int, rare: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`rare` about once in n draws (the last of n choices: Hypothesis favours the first ones)."""
    return st.sampled_from(range(n)).flatmap(lambda i: rare if i == n - 1 else usual)


def maybe(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON value: most records convert, some fail anywhere."""
    return one_in(20, st.one_of(scalars, json_values), plausible)


def record_of(**members: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object whose members are each present most of the time."""
    present = st.fixed_dictionaries({k: one_in(20, st.none(), v) for k, v in members.items()})
    return present.map(lambda d: {k: v for k, v in d.items() if v is not None})


printable = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=60)
dates = maybe(
    one_in(
        20,
        st.sampled_from(["13/06/2021 10:44:24", "2021-02-30T00:00:00Z", "06-10-2021"]),
        st.sampled_from(
            ["10/06/2021 10:44:24", "2020-04-08T23:33:18Z", "2024-07-17T07:36:57.985998Z", "2030-01-01T00:00:00Z"]
        )
        | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    )
)
numbers = maybe(one_in(20, st.floats(max_value=0.4) | st.just(2**40), st.floats(0.5, 1000) | st.integers(1, 1000)))
tariff_prices = maybe(one_in(20, st.floats(max_value=-0.01) | st.just(2**40), st.floats(0, 100) | st.integers(0, 10)))
connectors = record_of(
    uid=maybe(st.integers(0, 5)),
    externalId=maybe(st.sampled_from(["1", "2", "x" * 40])),
    connectorType=maybe(
        one_in(
            20,
            st.sampled_from(["Avcon", "Unspecified", "CCS"]),
            st.sampled_from(
                ["Type2", "Type2Combo", "Domestic", "Industrial3PEAc", "IndustrialPneAc", "Tesla", "type1"]
            ),
        )
    ),
    electricalProperties=maybe(
        record_of(
            powerType=maybe(st.sampled_from(["AC1Phase", "AC3Phase", "DC", "ac3phase"])),
            voltage=numbers,
            amperage=numbers,
            maxElectricPower=numbers,
        )
    ),
    fixedCable=maybe(st.booleans()),
    tariff=maybe(
        record_of(
            startFee=tariff_prices,
            perMinute=tariff_prices,
            perKWh=tariff_prices,
            currency=maybe(one_in(20, st.sampled_from(["XYZ", "eur", ""]), st.sampled_from(["EUR", "GBP"]))),
        )
    ),
    updated=dates,
    deleted=one_in(4, dates, st.none()),
)
evses = record_of(
    uid=maybe(st.integers(0, 5)),
    externalId=scalars,
    evseId=maybe(one_in(20, st.just("x" * 50), st.sampled_from(["NL*TNM*E01000401*0", "DE*ALL*E1", "NL*OHB*E1"]))),
    status=maybe(one_in(20, st.just("Broken"), st.sampled_from(["Available", "Occupied", "Unavailable", "unknown"]))),
    connectors=maybe(st.lists(connectors, min_size=1, max_size=2)),
    authorizationMethods=maybe(st.lists(st.sampled_from(["RFIDToken", "NewMotionApp", "PnC", "Foo"]))),
    updated=dates,
    deleted=one_in(4, dates, st.none()),
    physicalReference=maybe(printable),
)
records = record_of(
    uid=maybe(st.integers(0, 10)),
    externalId=scalars,
    coordinates=maybe(
        record_of(latitude=maybe(st.floats(50, 53)), longitude=maybe(st.floats(4, 7))),
    ),
    operatorName=maybe(printable),
    suboperatorName=maybe(printable),
    operatorId=one_in(4, maybe(st.sampled_from(["DE-ALL", "NL*TNM", "AT-HTB"])), st.none()),
    countryCode=one_in(4, maybe(st.sampled_from(["NL", "DE"])), st.none()),
    partyId=one_in(4, maybe(st.sampled_from(["TNM", "ALL", "XXX"])), st.none()),
    address=maybe(
        record_of(
            streetAndNumber=maybe(printable),
            postalCode=maybe(printable),
            city=maybe(printable),
            country=maybe(one_in(20, st.just("XX"), st.sampled_from(["NLD", "NL", "DEU", "de"]))),
        )
    ),
    accessibility=maybe(record_of(status=maybe(st.sampled_from(["FreePublic", "Restricted"])))),
    openingHours=maybe(
        st.lists(
            record_of(
                weekDay=maybe(st.sampled_from(["Mon", "Sun", "thu", "Funday"])),
                startTime=maybe(st.sampled_from(["00:00", "08:00", "22:00", "23:59", "8:00"])),
                endTime=maybe(st.sampled_from(["00:00", "06:00", "20:00", "23:59"])),
            ),
            max_size=8,
        )
    ),
    openTwentyFourSeven=maybe(st.booleans()),
    updated=dates,
    evses=maybe(st.lists(evses, min_size=1, max_size=2)),
)
PROPERTY = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@PROPERTY
@given(evses, st.sampled_from(Mode), st.sampled_from([None, "NLD", "FRA", "JPN"]), st.none() | st.just(NOW))
def test_any_evse_gives_a_valid_evse_or_a_conversion_error(
    raw: dict[str, Any], mode: Mode, country: str | None, now: datetime | None
) -> None:
    try:
        evse = decode_location_record({"evses": [raw]}).evses
        assert evse is not None
        result = evse_to_ocpi(evse[0], country_alpha3=country, mode=mode, now=now)
    except ConversionError:
        return
    assert ocpi.checked(result.value) == result.value


@PROPERTY
@given(records, st.sampled_from(Mode), st.none() | st.sampled_from(["1", "2459405", "TNM-1"]), st.booleans())
def test_any_location_record_gives_a_valid_location_or_a_conversion_error(
    raw: dict[str, Any], mode: Mode, location_id: str | None, as_bytes: bool
) -> None:
    try:
        record = decode_location_record(msgspec.json.encode(raw) if as_bytes else raw)
        result = location_to_ocpi(
            record, location_id=location_id, parties=OUR_PARTIES, default_party=DEFAULT_PARTY, mode=mode, now=NOW
        )
    except ConversionError:
        return
    assert ocpi.checked(result.value) == result.value
    assert all(isinstance(w, str) for w in result.warnings)
    # Every Tariff is valid and named by a connector, and every id a connector names has its Tariff, once.
    assert [ocpi.checked(t) for t in result.tariffs] == list(result.tariffs)
    named = {i for e in result.value.evses or () for c in e.connectors for i in c.tariff_ids or ()}
    assert sorted(t.id for t in result.tariffs) == sorted(named)


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ({"uid": 7001, "externalId": "X"}, "7001"),
        ({"uid": "", "externalId": "OHB-1"}, "OHB-1"),
        ({"uid": None, "externalId": 12}, "12"),
        ({"uid": True}, None),
        ({"uid": {"nested": 1}}, None),
        ({}, None),
        ("not a record", None),
    ],
)
def test_the_id_a_raw_record_gives_itself(raw: object, said: str | None) -> None:
    """Before decoding (to name a rejected record, and to tell the sync's records apart): uid, else externalId."""
    assert said_location_id(raw) == said
