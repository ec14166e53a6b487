"""The Locations wire models against the official OCPI 2.2.1 examples, and the view served to 2.2 peers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocpi_hub.ocpi import locations as ocpi
from ocpi_hub.ocpi.common import OcpiStruct

EXAMPLES = Path(__file__).parent / "data" / "ocpi-examples" / "2.2.1"

FULL_LOCATIONS = [
    "location_example.json",
    "location_example_parking_garage_opening_hours.json",
    "location_example_uc2_destination_charger.json",
    "location_example_uc3_destination_charger_not_published.json",
    "location_example_uc4_limited_visibility.json",
    "location_example_uc5_home_charge_point.json",
]
# Fragments: (file, the member holding the object or None for the whole file, its class).
FRAGMENTS: list[tuple[str, str | None, type[OcpiStruct]]] = [
    ("location_energymix_example_complete.json", "energy_mix", ocpi.EnergyMix),
    ("location_energymix_example_energy_provider.json", "energy_mix", ocpi.EnergyMix),
    ("location_energymix_example_simple.json", "energy_mix", ocpi.EnergyMix),
    ("location_hours_247_open_exception_closing.json", None, ocpi.Hours),
    ("location_hours_opening_hours_with_exceptional_closing.json", None, ocpi.Hours),
    ("location_hours_opening_hours_with_exceptional_opening.json", None, ocpi.Hours),
    ("location_regularhours_example.json", "opening_times", ocpi.Hours),
]
# PATCH bodies carry only the changed fields: each is laid over a full object of the class it patches, which must
# then still be valid.
PATCHES: list[tuple[str, type[OcpiStruct]]] = [
    ("location_patch_example_location.json", ocpi.Location),
    ("location_patch_example_remove_evse.json", ocpi.EVSE),
    ("location_patch_example_status.json", ocpi.EVSE),
    ("location_patch_example_tariff.json", ocpi.Connector),
]
INVALID = ["location_put_example_add_evse.json"]


def load(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_bytes())


def without_unset(value: Any) -> Any:
    """The JSON with null members and empty lists removed: what omit-when-unset does not send."""
    if isinstance(value, dict):
        return {k: without_unset(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [without_unset(v) for v in value]
    return value


def test_every_location_example_is_covered() -> None:
    covered = {*FULL_LOCATIONS, *(f for f, _, _ in FRAGMENTS), *(f for f, _ in PATCHES), *INVALID}
    assert {p.name for p in EXAMPLES.glob("location*.json")} == covered


@pytest.mark.parametrize("name", FULL_LOCATIONS)
def test_full_location_examples_round_trip(name: str) -> None:
    original = (EXAMPLES / name).read_bytes()
    location = msgspec.json.decode(original, type=ocpi.Location)
    assert json.loads(ocpi.render(location)) == without_unset(json.loads(original))


@pytest.mark.parametrize(("name", "member", "cls"), FRAGMENTS)
def test_fragment_examples_round_trip(name: str, member: str | None, cls: type[OcpiStruct]) -> None:
    original = load(name)
    fragment = original if member is None else original[member]
    obj = msgspec.convert(fragment, cls)
    assert json.loads(ocpi.render(obj)) == without_unset(fragment)


def _patched(cls: type[OcpiStruct]) -> dict[str, Any]:
    location: dict[str, Any] = load("location_example.json")
    if cls is ocpi.Location:
        return location
    evse: dict[str, Any] = location["evses"][0]
    return evse if cls is ocpi.EVSE else evse["connectors"][0]


@pytest.mark.parametrize(("name", "cls"), PATCHES)
def test_patch_examples_fit_the_objects_they_patch(name: str, cls: type[OcpiStruct]) -> None:
    patch = load(name)
    patched = msgspec.convert({**_patched(cls), **patch}, cls)
    assert {k: v for k, v in json.loads(ocpi.render(patched)).items() if k in patch} == patch


def test_the_defective_add_evse_example_fails_validation() -> None:
    # Its connector lacks power_type, max_voltage, max_amperage and last_updated (docs/ocpi.md §8.4).
    with pytest.raises(
        msgspec.ValidationError, match=r"missing required field `power_type` - at `\$\.connectors\[0\]`"
    ):
        msgspec.json.decode((EXAMPLES / "location_put_example_add_evse.json").read_bytes(), type=ocpi.EVSE)


def test_unknown_members_are_ignored() -> None:
    raw = {**load("location_example.json"), "x_custom": {"a": 1}}
    assert msgspec.convert(raw, ocpi.Location).id == "LOC1"


NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def connector(
    id: str = "1",
    standard: ocpi.ConnectorType = ocpi.ConnectorType.IEC_62196_T2,
    power_type: ocpi.PowerType = ocpi.PowerType.AC_3_PHASE,
) -> ocpi.Connector:
    return ocpi.Connector(
        id=id,
        standard=standard,
        format=ocpi.ConnectorFormat.SOCKET,
        power_type=power_type,
        max_voltage=230,
        max_amperage=16,
        last_updated=NOW,
    )


def evse(uid: str, *connectors: ocpi.Connector, capabilities: list[ocpi.Capability] | None = None) -> ocpi.EVSE:
    return ocpi.EVSE(
        uid=uid, status=ocpi.Status.AVAILABLE, capabilities=capabilities, connectors=list(connectors), last_updated=NOW
    )


def location(*evses: ocpi.EVSE) -> ocpi.Location:
    return ocpi.Location(
        country_code="NL",
        party_id="OHB",
        id="L1",
        publish=True,
        address="Main 1",
        city="Utrecht",
        country="NLD",
        coordinates=ocpi.GeoLocation(latitude="52.090737", longitude="5.121420"),
        evses=list(evses) or None,
        time_zone="Europe/Amsterdam",
        last_updated=NOW,
    )


def test_for_version_leaves_out_what_2_2_does_not_define() -> None:
    mixed = evse(
        "E1",
        connector("1"),
        connector("2", standard=ocpi.ConnectorType.NEMA_5_20),
        connector("3", power_type=ocpi.PowerType.AC_2_PHASE_SPLIT),
        capabilities=[ocpi.Capability.RFID_READER, ocpi.Capability.START_SESSION_CONNECTOR_REQUIRED],
    )
    only_new = evse("E2", connector("1", standard=ocpi.ConnectorType.GBT_DC, power_type=ocpi.PowerType.DC))
    full = location(mixed, only_new)

    served = ocpi.for_version(full, "2.2")

    assert served.evses is not None
    assert [e.uid for e in served.evses] == ["E1"]
    assert [c.id for c in served.evses[0].connectors] == ["1"]
    assert served.evses[0].capabilities == [ocpi.Capability.RFID_READER]
    assert ocpi.checked(served) == served
    assert ocpi.for_version(full, "2.2.1") is full


def test_for_version_single_objects() -> None:
    assert ocpi.connector_for_version(connector(standard=ocpi.ConnectorType.CHAOJI), "2.2") is None
    assert ocpi.connector_for_version(connector(power_type=ocpi.PowerType.AC_2_PHASE), "2.2") is None
    plain = connector()
    assert ocpi.connector_for_version(plain, "2.2") is plain
    assert ocpi.evse_for_version(evse("E", connector(standard=ocpi.ConnectorType.DOMESTIC_M)), "2.2") is None
    new = evse("E", connector(standard=ocpi.ConnectorType.DOMESTIC_M))
    assert ocpi.evse_for_version(new, "2.2.1") is new
    only_capability = evse("E", connector(), capabilities=[ocpi.Capability.START_SESSION_CONNECTOR_REQUIRED])
    served = ocpi.evse_for_version(only_capability, "2.2")
    assert served is not None
    assert "capabilities" not in json.loads(ocpi.render(served))


def test_for_version_refuses_versions_it_has_no_view_for() -> None:
    with pytest.raises(ValueError, match=r"2\.1\.1"):
        ocpi.for_version(location(), "2.1.1")


@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(ocpi.ConnectorType), st.sampled_from(ocpi.PowerType)), min_size=1),
        max_size=4,
    ),
    st.lists(st.sampled_from(ocpi.Capability), unique=True),
)
def test_a_2_2_peer_never_sees_a_2_2_1_value(
    evse_specs: list[list[tuple[ocpi.ConnectorType, ocpi.PowerType]]], capabilities: list[ocpi.Capability]
) -> None:
    evses = [
        evse(f"E{i}", *(connector(str(j), s, p) for j, (s, p) in enumerate(spec)), capabilities=capabilities or None)
        for i, spec in enumerate(evse_specs)
    ]
    served = ocpi.for_version(location(*evses), "2.2")
    sent = json.loads(ocpi.render(served))
    values = {
        v
        for e in sent.get("evses", [])
        for v in (*e.get("capabilities", []), *(x for c in e["connectors"] for x in (c["standard"], c["power_type"])))
    }
    assert not values & ocpi.ONLY_IN_2_2_1
    assert ocpi.checked(served) == served
    kept = sum(
        1 for spec in evse_specs if any(s not in ocpi.ONLY_IN_2_2_1 and p not in ocpi.ONLY_IN_2_2_1 for s, p in spec)
    )
    assert len(served.evses or ()) == kept


def test_render_leaves_unset_fields_out() -> None:
    sent = json.loads(ocpi.render(connector()))
    assert sent == {
        "id": "1",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 16,
        "last_updated": "2024-05-01T12:00:00Z",
    }


def test_mixed_case_connector_type_is_the_spec_value() -> None:
    raw = {**msgspec.to_builtins(connector()), "standard": "IEC_60309_2_single_16"}
    assert msgspec.convert(raw, ocpi.Connector).standard is ocpi.ConnectorType.IEC_60309_2_single_16
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**raw, "standard": "IEC_60309_2_SINGLE_16"}, ocpi.Connector)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (msgspec.structs.replace(evse("E", connector()), connectors=[]), "length >= 1 - at `$.connectors`"),
        (ocpi.GeoLocation(latitude="52.1", longitude="5.121420"), "at `$.latitude`"),
        (ocpi.GeoLocation(latitude="52.090737", longitude="5.12142012"), "at `$.longitude`"),
        (msgspec.structs.replace(location(), address="x" * 256), "length <= 255 - at `$.address`"),
        (msgspec.structs.replace(location(), state="x" * 46), "length <= 45 - at `$.state`"),
        (msgspec.structs.replace(location(), country="NL"), "at `$.country`"),
    ],
)
def test_checked_enforces_the_constraints_construction_skips(obj: OcpiStruct, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(message)):
        ocpi.checked(obj)


def test_address_and_state_follow_the_post_d2_erratum() -> None:
    longer = msgspec.structs.replace(location(), address="x" * 255, state="y" * 45)
    assert ocpi.checked(longer) == longer


# 20:00 is the case the 2.2 typo `2[1-3]` rejected.
@pytest.mark.parametrize(
    ("begin", "end"), [("00:00", "00:01"), ("09:59", "10:00"), ("20:00", "20:30"), ("23:00", "23:59")]
)
def test_regular_hours_accept_the_fixed_pattern(begin: str, end: str) -> None:
    hours = msgspec.convert({"weekday": 7, "period_begin": begin, "period_end": end}, ocpi.RegularHours)
    assert (hours.period_begin, hours.period_end) == (begin, end)


@pytest.mark.parametrize(
    "raw",
    [
        {"weekday": 1, "period_begin": "24:00", "period_end": "23:59"},
        {"weekday": 1, "period_begin": "8:00", "period_end": "10:00"},
        {"weekday": 0, "period_begin": "08:00", "period_end": "10:00"},
        {"weekday": 8, "period_begin": "08:00", "period_end": "10:00"},
        {"weekday": 1, "period_begin": "10:00", "period_end": "08:00"},
        {"weekday": 1, "period_begin": "10:00", "period_end": "10:00"},
    ],
)
def test_regular_hours_reject(raw: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(raw, ocpi.RegularHours)


@pytest.mark.parametrize(
    "raw",
    [
        {"twentyfourseven": False},
        {"twentyfourseven": False, "regular_hours": []},
        {"twentyfourseven": True, "regular_hours": [{"weekday": 1, "period_begin": "08:00", "period_end": "10:00"}]},
    ],
)
def test_hours_need_regular_hours_exactly_when_not_twentyfourseven(raw: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError, match="regular_hours"):
        msgspec.convert(raw, ocpi.Hours)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "RFID", "issuer": "ANWB"}, "at least one of"),
        ({"uid": "123"}, "type must be set"),
        ({"visual_number": "12-3"}, "issuer must be set"),
    ],
)
def test_publish_token_type_rules(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(raw, ocpi.PublishTokenType)


def test_datetimes_decode_as_datetime() -> None:
    location = msgspec.json.decode((EXAMPLES / "location_example.json").read_bytes(), type=ocpi.Location)
    assert location.last_updated == datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)
