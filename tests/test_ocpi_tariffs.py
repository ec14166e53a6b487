"""The Tariffs wire models against the official OCPI 2.2.1 examples, and the constraints their types carry."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pycountry
import pytest

from ocpi_hub.ocpi import tariffs as ocpi
from ocpi_hub.ocpi.locations import checked

EXAMPLES = Path(__file__).parent / "data" / "ocpi-examples" / "2.2.1"

VALID = sorted(p.name for p in EXAMPLES.glob("tariff*.json") if p.name != "tariff_put_example.json")


def load(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_bytes())


def test_every_tariff_example_is_covered() -> None:
    # tariff_7 was removed from the spec in d2; tariffrestriction_* are whole Tariffs too.
    assert len(VALID) == 19
    assert "tariffrestriction_example_max_power.json" in VALID


@pytest.mark.parametrize("name", VALID)
def test_tariff_examples_round_trip(name: str) -> None:
    original = (EXAMPLES / name).read_bytes()
    tariff = msgspec.json.decode(original, type=ocpi.Tariff)
    assert json.loads(ocpi.render(tariff)) == json.loads(original)


def test_the_defective_put_example_is_refused_for_its_missing_last_updated() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"^Object missing required field `last_updated`$"):
        msgspec.json.decode((EXAMPLES / "tariff_put_example.json").read_bytes(), type=ocpi.Tariff)


def test_numbers_keep_their_value_not_their_spelling() -> None:
    """Prices are floats: `0.50` comes back as `0.5`, `32.00` as `32.0`; step_size stays an int."""
    original = (EXAMPLES / "tariff_10_025kwh_parking_start.json").read_bytes()
    assert b'"price": 0.50' in original
    rendered = ocpi.render(msgspec.json.decode(original, type=ocpi.Tariff))
    assert b'{"type":"FLAT","price":0.5,"vat":20.0,"step_size":1}' in rendered
    assert b'{"type":"PARKING_TIME","price":2.0,"vat":20.0,"step_size":900}' in rendered

    complex_tariff = msgspec.json.decode((EXAMPLES / "tariff_4_complex.json").read_bytes(), type=ocpi.Tariff)
    assert b'"restrictions":{"max_current":32.0}' in ocpi.render(complex_tariff)

    # An integer price is a valid JSON number and comes back as a float.
    raw = load("tariff_1_simple_2hour.json")
    raw["elements"][0]["price_components"][0]["price"] = 2
    component = json.loads(ocpi.render(msgspec.convert(raw, ocpi.Tariff)))["elements"][0]["price_components"][0]
    assert component == {"type": "TIME", "price": 2.0, "vat": 10.0, "step_size": 60}
    assert type(component["price"]) is float
    assert type(component["step_size"]) is int


def test_datetimes_and_enums_decode_to_their_types() -> None:
    tariff = msgspec.json.decode((EXAMPLES / "tariff_4_complex.json").read_bytes(), type=ocpi.Tariff)
    assert tariff.last_updated == datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)
    assert tariff.type is ocpi.TariffType.REGULAR
    restrictions = tariff.elements[2].restrictions
    assert restrictions is not None
    assert restrictions.day_of_week is not None
    assert restrictions.day_of_week[0] is ocpi.DayOfWeek.MONDAY


def test_currencies_are_iso_4217() -> None:
    assert {c.alpha_3 for c in pycountry.currencies} == ocpi.CURRENCIES
    assert {"EUR", "GBP", "CHF", "SEK"} <= ocpi.CURRENCIES


def tariff(**changes: Any) -> dict[str, Any]:
    return {**load("tariff_4_complex.json"), **changes}


def element(restrictions: dict[str, Any] | None = None, **component: Any) -> dict[str, Any]:
    price_component = {"type": "TIME", "price": 1.0, "step_size": 1, **component}
    return {"price_components": [price_component], **({} if restrictions is None else {"restrictions": restrictions})}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (tariff(currency="XYZ"), "Invalid enum value 'XYZ' - at `$.currency`"),
        (tariff(currency="eur"), "Invalid enum value 'eur' - at `$.currency`"),
        (tariff(currency="EURO"), "Invalid enum value 'EURO' - at `$.currency`"),
        (tariff(elements=[]), "Expected `array` of length >= 1 - at `$.elements`"),
        (
            tariff(elements=[{"price_components": []}]),
            "Expected `array` of length >= 1 - at `$.elements[0].price_components`",
        ),
        (tariff(id="x" * 37), "Expected `str` of length <= 36 - at `$.id`"),
        (tariff(id="é"), r"Expected `str` matching regex '^[\\x20-\\x7e]*$' - at `$.id`"),
        (tariff(country_code="DEU"), "Expected `str` of length <= 2 - at `$.country_code`"),
        (tariff(party_id="AL"), "Expected `str` of length >= 3 - at `$.party_id`"),
        (
            tariff(elements=[element(step_size=-1)]),
            "Expected `int` >= 0 - at `$.elements[0].price_components[0].step_size`",
        ),
        (
            tariff(elements=[element(step_size=1.5)]),
            "Expected `int`, got `float` - at `$.elements[0].price_components[0].step_size`",
        ),
        (
            tariff(elements=[element(price="0.25")]),
            "Expected `float`, got `str` - at `$.elements[0].price_components[0].price`",
        ),
        (
            tariff(elements=[element(type="PARKING")]),
            "Invalid enum value 'PARKING' - at `$.elements[0].price_components[0].type`",
        ),
        (
            tariff(elements=[element({"start_time": "24:00"})]),
            "Expected `str` matching regex '^([0-1][0-9]|2[0-3]):[0-5][0-9]$'"
            " - at `$.elements[0].restrictions.start_time`",
        ),
        (
            tariff(elements=[element({"end_time": "9:00"})]),
            "Expected `str` of length >= 5 - at `$.elements[0].restrictions.end_time`",
        ),
        (
            tariff(elements=[element({"day_of_week": ["MONDAY", "MON"]})]),
            "Invalid enum value 'MON' - at `$.elements[0].restrictions.day_of_week[1]`",
        ),
        (
            tariff(elements=[element({"day_of_week": "MONDAY"})]),
            "Expected `array | null`, got `str` - at `$.elements[0].restrictions.day_of_week`",
        ),
        (
            tariff(elements=[element({"reservation": "EXPIRED"})]),
            "Invalid enum value 'EXPIRED' - at `$.elements[0].restrictions.reservation`",
        ),
        (
            tariff(elements=[element({"reservation": "RESERVATION"}, type="ENERGY")]),
            "an element with a reservation restriction may only have FLAT and TIME components - at `$.elements[0]`",
        ),
        (tariff(type="FLAT"), "Invalid enum value 'FLAT' - at `$.type`"),
        (tariff(min_price={"incl_vat": 1.0}), "Object missing required field `excl_vat` - at `$.min_price`"),
        (tariff(last_updated=None), "Expected `datetime`, got `null` - at `$.last_updated`"),
    ],
)
def test_invalid_tariffs_are_refused_naming_the_path_and_the_rule(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError) as error:
        msgspec.convert(raw, ocpi.Tariff)
    assert str(error.value) == message


@pytest.mark.parametrize("value", ["2024-13-01", "2024-00-10", "2024-02-32", "2024-1-01", "3024-01-01", "2024/01/01"])
@pytest.mark.parametrize("member", ["start_date", "end_date"])
def test_restriction_dates_follow_the_spec_pattern(member: str, value: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(f"- at `$.elements[0].restrictions.{member}`")):
        msgspec.convert(tariff(elements=[element({member: value})]), ocpi.Tariff)


@pytest.mark.parametrize(
    "restrictions",
    [
        {"start_time": "00:00", "end_time": "23:59"},
        {"start_time": "20:00", "end_time": "00:00"},  # "00:00" as end: until the end of the day
        {"start_date": "2024-02-29", "end_date": "2999-12-31"},
        {"reservation": "RESERVATION_EXPIRES"},
    ],
)
def test_valid_restrictions(restrictions: dict[str, Any]) -> None:
    decoded = msgspec.convert(tariff(elements=[element(restrictions)]), ocpi.Tariff)
    assert json.loads(ocpi.render(decoded))["elements"][0]["restrictions"] == restrictions


def test_vat_absent_and_vat_zero_differ() -> None:
    """`vat` absent means no VAT applies; 0.0 is a 0 % rate and must be sent."""
    free = msgspec.json.decode((EXAMPLES / "tariff_5_free_of_charge.json").read_bytes(), type=ocpi.Tariff)
    assert free.elements[0].price_components[0].vat is None
    zero = msgspec.convert(tariff(elements=[element(vat=0.0)]), ocpi.Tariff)
    assert json.loads(ocpi.render(zero))["elements"][0]["price_components"][0]["vat"] == 0.0


def test_construction_skips_constraints_that_checked_enforces() -> None:
    built = ocpi.Tariff(
        country_code="NL",
        party_id="OHB",
        id="T1",
        currency="EUR",
        elements=[
            ocpi.TariffElement(
                price_components=[ocpi.PriceComponent(type=ocpi.TariffDimensionType.FLAT, price=0.0, step_size=1)]
            )
        ],
        last_updated=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )
    assert json.loads(ocpi.render(built)) == {
        "country_code": "NL",
        "party_id": "OHB",
        "id": "T1",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "FLAT", "price": 0.0, "step_size": 1}]}],
        "last_updated": "2024-05-01T12:00:00Z",
    }
    assert checked(built) == built
    with pytest.raises(msgspec.ValidationError, match=re.escape("Invalid enum value 'EU' - at `$.currency`")):
        checked(msgspec.structs.replace(built, currency="EU"))
    assert json.loads(ocpi.render([built, built])) == [json.loads(ocpi.render(built))] * 2
