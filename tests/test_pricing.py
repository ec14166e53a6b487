"""The pricing engine (docs/cpo-modules.md §3.5, §10) against the worked examples of §12, with the official tariff
examples, plus edge cases and properties. Local times are Europe/Amsterdam, as in §12."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpi_hub.ocpi.tariffs import DayOfWeek, Tariff
from ocpi_hub.pricing import ZERO, Amount, Bill, Reading, Reservation, bill, round_money

EXAMPLES = Path(__file__).parent / "data" / "ocpi-examples" / "2.2.1"
TZ = "Europe/Amsterdam"


def example(name: str) -> Tariff:
    """An official tariff example, read as a partner would send it."""
    raw = json.loads((EXAMPLES / name).read_text())
    raw.setdefault("last_updated", "2024-01-01T00:00:00Z")  # some examples lack it (docs/cpo-modules.md §11)
    return msgspec.json.decode(json.dumps(raw), type=Tariff)


def tariff(*elements: dict[str, Any], **fields: Any) -> Tariff:
    raw = {
        "country_code": "NL",
        "party_id": "OHB",
        "id": "T",
        "currency": "EUR",
        "last_updated": "2024-01-01T00:00:00Z",
    }
    return msgspec.convert(raw | {"elements": list(elements)} | fields, Tariff, strict=False)


def at(local: str) -> datetime:
    """'2024-06-04 14:00' in Amsterdam, as an aware UTC instant."""
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(TZ)).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def session(day: str, *points: tuple[str, float | Decimal], current_a: float | None = None) -> list[Reading]:
    """Readings at local times of one day (an "HH:MM:SS" also works) with the register in Wh."""
    current = Decimal(str(current_a)) if current_a is not None else None
    return [Reading(at(f"{day} {hhmm}"), Decimal(str(wh)), current_a=current) for hhmm, wh in points]


def pair(amount: Amount) -> tuple[Decimal, Decimal]:
    return amount.excl_vat, amount.incl_vat


def d(number: str | int) -> Decimal:
    return Decimal(number)


def hours(minutes: float) -> Decimal:
    return Decimal(str(minutes)) / 60


Row = tuple[datetime, Decimal, Decimal, Decimal, Decimal]


def periods(b: Bill) -> list[Row]:
    """start, energy kWh, charging h, parking h, reservation h of each period."""
    return [(p.start_date_time, p.energy_kwh, p.time_h, p.parking_time_h, p.reservation_time_h) for p in b.periods]


def row(
    start: datetime, kwh: Decimal | int, time_h: Decimal | int, parking_h: Decimal | int, reserved_h: Decimal | int
) -> Row:
    return start, Decimal(kwh), Decimal(time_h), Decimal(parking_h), Decimal(reserved_h)


# --- §12 W1 to W7 ----------------------------------------------------------------------------------------------------


def test_w1_start_fee_energy_and_parking_rounded_to_15_minutes() -> None:
    b = bill(
        example("tariff_10_025kwh_parking_start.json"),
        TZ,
        session("2024-06-04", ("14:00", 0), ("16:00", 20_000), ("16:40", 20_000)),
    )

    assert pair(b.fixed) == (d("0.50"), d("0.60"))
    assert pair(b.energy) == (d("5.00"), d("5.50"))
    assert pair(b.parking) == (d("1.50"), d("1.80"))  # 40 min billed as 45
    assert b.time == ZERO
    assert pair(b.total) == (d("7.00"), d("7.90"))
    assert b.bound is None
    assert periods(b) == [
        row(utc("2024-06-04 12:00"), d(20), d(2), 0, 0),
        row(utc("2024-06-04 14:00"), 0, 0, hours(40), 0),
    ]
    assert {p.tariff_id for p in b.periods} == {"18"}
    assert (b.total_energy_kwh, b.total_time_h, b.total_parking_time_h) == (d(20), hours(160), hours(40))


def test_w2_charging_time_exact_when_priced_parking_follows() -> None:
    b = bill(
        example("tariff_13_simple_3hour_5parking.json"),
        TZ,
        session("2024-06-06", ("09:00", 0), ("11:30", 11_000), ("12:12", 11_000)),
    )

    assert pair(b.time) == (d("7.50"), d("8.25"))
    assert pair(b.parking) == (d("3.75"), d("4.50"))  # 42 min billed as 45
    assert pair(b.total) == (d("11.25"), d("12.75"))
    assert (b.total_time_h, b.total_parking_time_h) == (d("3.2"), d("0.7"))


def test_w2_variant_charging_time_rounded_when_the_session_ends_charging() -> None:
    b = bill(
        example("tariff_13_simple_3hour_5parking.json"),
        TZ,
        session("2024-06-06", ("09:00:00", 0), ("11:30:20", 11_000)),
    )

    assert pair(b.total) == (d("7.55"), d("8.305"))  # 150 min 20 s billed as 151 min


def test_w3a_monday_single_phase_16_amps() -> None:
    b = bill(
        example("tariff_4_complex.json"),
        TZ,
        session("2024-06-03", ("09:30", 0), ("12:15", 10_000), ("12:57", 10_000), current_a=16),
    )

    assert pair(b.fixed) == (d("2.50"), d("2.875"))
    assert pair(b.time) == (d("2.75"), d("3.30"))  # element [1], 1.00/h
    assert pair(b.parking) == (d("3.75"), d("4.125"))  # element [4], 42 min billed as 45
    assert pair(b.total) == (d("9.00"), d("10.30"))


def test_w3b_saturday_three_phase_uses_the_weekend_elements() -> None:
    b = bill(
        example("tariff_4_complex.json"),
        TZ,
        session("2024-06-08", ("13:30", 0), ("15:24", 20_000), ("16:35", 20_000), current_a=43.5),
    )

    assert pair(b.time) == (d("2.375"), d("2.85"))  # element [3], 1.25/h
    assert pair(b.parking) == (d("7.50"), d("8.25"))  # element [5], 71 min billed as 75
    assert pair(b.total) == (d("12.375"), d("13.975"))  # the 2.2.1 figures, not d2's 12.28 (§10 defect 1)


def test_w3b_parking_after_17_is_free_and_its_surplus_priced_at_the_last_parking_rate() -> None:
    b = bill(
        example("tariff_4_complex.json"),
        TZ,
        session("2024-06-08", ("13:30", 0), ("15:24", 20_000), ("17:10", 20_000), current_a=43.5),
    )

    # 15:24-17:00 = 96 min at 6.00/h, rounded up to 100 min; 17:00-17:10 matches no PARKING_TIME element.
    assert pair(b.parking) == (d("10.00"), d("11.00"))
    assert [p.start_date_time for p in b.periods] == [
        utc("2024-06-08 11:30"),
        utc("2024-06-08 13:24"),
        utc("2024-06-08 15:00"),
    ]
    assert b.periods[2].parking_time_h == hours(10)


@pytest.mark.parametrize(
    ("kwh", "total", "bound"),
    [
        ("50", (d("10.00"), d("11.00")), "max_price"),  # raw 13.00 / 14.35
        ("30", (d("8.00"), d("8.85")), None),
        ("37.9", (d("9.975"), d("11.00")), "max_price"),  # raw incl. 11.0225: only the incl. cap binds
    ],
)
def test_w4_max_price(kwh: str, total: tuple[Decimal, Decimal], bound: str | None) -> None:
    b = bill(
        example("tariff_6_025kwh_start_max_price.json"),
        TZ,
        session("2019-06-20", ("10:00", 0), ("13:00", Decimal(kwh) * 1000)),
    )

    assert pair(b.total) == total
    assert b.bound == bound
    # The components stay unadjusted (D9).
    assert pair(b.fixed) + pair(b.energy) == (d("0.50"), d("0.60"), d(kwh) / 4, d(kwh) / 4 * d("1.1"))


@pytest.mark.parametrize(
    ("kwh", "total", "bound"),
    [
        ("1.2", (d("0.50"), d("0.55")), "min_price"),  # raw 0.30 / 0.33
        ("2.1", (d("0.525"), d("0.5775")), None),
    ],
)
def test_w4_min_price(kwh: str, total: tuple[Decimal, Decimal], bound: str | None) -> None:
    b = bill(
        example("tariff_12_025kwh_min_price.json"),
        TZ,
        session("2019-06-20", ("10:00", 0), ("11:00", Decimal(kwh) * 1000)),
    )

    assert pair(b.total) == total
    assert b.bound == bound


@pytest.mark.parametrize(
    ("points", "total"),
    [
        # #1: 5 min at 1.20 + 5 min at 2.40, no rounding at the switch nor on TIME; parking 2 min billed as 15.
        ([("16:55", 0), ("17:05", 2_000), ("17:07", 2_000)], d("0.55")),
        # #2: 25 min at 1.20 + 10 min at 2.40; the total 35 min rounded to 45 with the last TIME step, surplus at 2.40.
        ([("16:35", 0), ("17:10", 5_000)], d("1.30")),
        # #3: 12 min at 2.40; priced parking 19:52-20:00 billed as 15 min at 1.00; 20:00-20:12 free (bugfix reading).
        ([("19:40", 0), ("19:52", 2_000), ("20:12", 2_000)], d("0.73")),
    ],
    ids=["1", "2", "3"],
)
def test_w5_step_size_when_elements_switch(points: list[tuple[str, float]], total: Decimal) -> None:
    b = bill(example("tariff_14_step_size.json"), TZ, session("2024-06-05", *points))

    assert pair(b.total) == (total, total)  # no vat in the tariff: incl. = excl.


def test_w5_periods_split_at_the_element_switches() -> None:
    one = bill(
        example("tariff_14_step_size.json"),
        TZ,
        session("2024-06-05", ("16:55", 0), ("17:05", 2_000), ("17:07", 2_000)),
    )
    three = bill(
        example("tariff_14_step_size.json"),
        TZ,
        session("2024-06-05", ("19:40", 0), ("19:52", 2_000), ("20:12", 2_000)),
    )

    assert periods(one) == [
        row(utc("2024-06-05 14:55"), d(1), hours(5), 0, 0),
        row(utc("2024-06-05 15:00"), d(1), hours(5), 0, 0),
        row(utc("2024-06-05 15:05"), 0, 0, hours(2), 0),
    ]
    assert [(p.start_date_time, p.parking_time_h) for p in three.periods[1:]] == [
        (utc("2024-06-05 17:52"), hours(8)),
        (utc("2024-06-05 18:00"), hours(12)),
    ]


def test_w6a_reservation_then_charging() -> None:
    b = bill(
        example("tariff_17_reservation_with_expire_fee.json"),
        TZ,
        session("2024-06-06", ("10:22", 0), ("12:22", 20_000)),
        reservation=Reservation(at("2024-06-06 10:00"), at("2024-06-06 10:22")),
    )

    assert pair(b.reservation) == (d("1.00"), d("1.20"))  # 22 min billed as 30 (step 600)
    assert pair(b.fixed) == (d("0.50"), d("0.60"))
    assert pair(b.energy) == (d("5.00"), d("5.50"))
    assert pair(b.total) == (d("6.50"), d("7.30"))
    assert periods(b) == [
        row(utc("2024-06-06 08:00"), 0, 0, 0, hours(22)),
        row(utc("2024-06-06 08:22"), d(20), d(2), 0, 0),
    ]
    assert (b.total_time_h, b.total_reservation_time_h) == (d(2), hours(22))  # D3: reservation not in total_time


def test_w6b_expired_reservation_pays_the_expiry_fee_and_the_reserved_time() -> None:
    b = bill(
        example("tariff_17_reservation_with_expire_fee.json"),
        TZ,
        [],
        reservation=Reservation(at("2024-06-06 10:00"), at("2024-06-06 11:00"), expired=True),
    )

    assert pair(b.reservation) == (d("6.00"), d("7.20"))  # FLAT 4.00 of element [0] + 1 h at 2.00 of element [1]
    assert pair(b.total) == (d("6.00"), d("7.20"))
    assert b.fixed == ZERO
    assert periods(b) == [row(utc("2024-06-06 08:00"), 0, 0, 0, d(1))]
    assert (b.total_energy_kwh, b.total_time_h) == (d(0), d(0))


def test_w6_tariff_18_the_expiry_time_price_wins_over_the_reservation_one() -> None:
    tariff_18 = example("tariff_18_reservation_with_expire_time.json")
    used = bill(
        tariff_18,
        TZ,
        session("2024-06-06", ("10:22", 0), ("12:22", 20_000)),
        reservation=Reservation(at("2024-06-06 10:00"), at("2024-06-06 10:22")),
    )
    expired = bill(tariff_18, TZ, [], reservation=Reservation(at("2024-06-06 10:00"), at("2024-06-06 11:30"), True))

    assert pair(used.reservation) == (d("1.50"), d("1.80"))  # 30 min at 3.00
    assert pair(used.total) == (d("7.00"), d("7.90"))
    assert pair(expired.total) == (d("9.00"), d("10.80"))  # 90 min at 6.00


@pytest.mark.parametrize(("expired", "price"), [(False, d("1.00")), (True, d("3.00"))])
def test_an_expired_reservation_takes_the_expiry_time_price_whatever_the_order(expired: bool, price: Decimal) -> None:
    reserving = tariff(
        {
            "price_components": [{"type": "TIME", "price": 1.0, "step_size": 1}],
            "restrictions": {"reservation": "RESERVATION"},
        },
        {
            "price_components": [{"type": "TIME", "price": 3.0, "step_size": 1}],
            "restrictions": {"reservation": "RESERVATION_EXPIRES"},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]},
    )

    b = bill(reserving, TZ, [], reservation=Reservation(at("2024-06-06 10:00"), at("2024-06-06 11:00"), expired))

    assert b.reservation.excl_vat == price


@pytest.mark.parametrize("with_power", [False, True], ids=["average-power", "metered-power"])
def test_w7_energy_price_by_power_band(with_power: bool) -> None:
    start = at("2024-06-06 10:00")
    steps = [(10, 1_000, 6_000), (60, 41_000, 48_000), (67.5, 41_500, 4_000)]  # minutes, register Wh, W
    readings = [Reading(start, d(0))] + [
        Reading(start + timedelta(minutes=m), Decimal(wh), power_w=Decimal(w) if with_power else None)
        for m, wh, w in steps
    ]

    b = bill(example("tariffrestriction_example_max_power.json"), TZ, readings)

    assert pair(b.total) == (d("20.30"), d("24.36"))  # 1 kWh at 0.20, 40 kWh at 0.50, 0.5 kWh at 0.20
    assert [p.energy_kwh for p in b.periods] == [d(1), d(40), d("0.5")]


def test_w7_energy_price_by_duration() -> None:
    b = bill(
        example("tariffrestriction_example_max_duration.json"),
        TZ,
        session("2024-06-06", ("10:00", 0), ("10:30", 5_000), ("10:40", 6_200)),
    )

    assert pair(b.total) == (d("0.30"), d("0.36"))
    assert [(p.start_date_time, p.energy_kwh) for p in b.periods] == [
        (utc("2024-06-06 08:00"), d(5)),
        (utc("2024-06-06 08:30"), d("1.2")),
    ]


# --- Edges -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current_a", "price"),
    [(31.9, d("1.00")), (32.0, d("2.00")), (48.0, d("2.00"))],
)
def test_max_current_is_exclusive_and_min_current_inclusive(current_a: float, price: Decimal) -> None:
    # Monday, 2 h charging: element [1] (max_current 32) or [2] (min_current 32, weekdays); both steps fit 2 h.
    b = bill(
        example("tariff_4_complex.json"),
        TZ,
        session("2024-06-03", ("10:00", 0), ("12:00", 10_000), current_a=current_a),
    )

    assert b.time.excl_vat == 2 * price


def test_an_unknown_current_meets_no_current_restriction() -> None:
    # D14: without a metered current neither element [1] (< 32 A) nor [2] (>= 32 A) matches: TIME is free.
    b = bill(example("tariff_4_complex.json"), TZ, session("2024-06-03", ("10:00", 0), ("12:00", 10_000)))

    assert b.time == ZERO
    assert pair(b.total) == (d("2.50"), d("2.875"))


def test_a_time_window_across_midnight() -> None:
    night = tariff(
        {
            "price_components": [{"type": "TIME", "price": 1.0, "step_size": 1}],
            "restrictions": {"start_time": "22:00", "end_time": "06:00"},
        },
        {"price_components": [{"type": "TIME", "price": 2.0, "step_size": 1}]},
    )

    b = bill(night, TZ, [Reading(at("2024-06-04 21:00"), d(0)), Reading(at("2024-06-05 07:00"), d(50_000))])

    assert b.time.excl_vat == 1 * 2 + 8 * 1 + 1 * 2
    assert [(p.start_date_time, p.time_h) for p in b.periods] == [
        (utc("2024-06-04 19:00"), d(1)),
        (utc("2024-06-04 20:00"), d(8)),
        (utc("2024-06-05 04:00"), d(1)),
    ]
    assert [p.energy_kwh for p in b.periods] == [d(5), d(40), d(5)]  # interpolated linearly


def test_end_time_midnight_means_until_the_end_of_the_day() -> None:
    evening = tariff(
        {
            "price_components": [{"type": "TIME", "price": 3.0, "step_size": 1}],
            "restrictions": {"start_time": "20:00", "end_time": "00:00"},
        },
        {"price_components": [{"type": "TIME", "price": 1.0, "step_size": 1}]},
    )

    b = bill(evening, TZ, [Reading(at("2024-06-04 19:00"), d(0)), Reading(at("2024-06-05 01:00"), d(6_000))])

    assert b.time.excl_vat == 1 + 4 * 3 + 1


def test_a_kwh_threshold_splits_the_interval() -> None:
    first_10_kwh_cheap = tariff(
        {"price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 1}], "restrictions": {"max_kwh": 10}},
        {"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}], "restrictions": {"min_kwh": 10}},
    )

    b = bill(
        first_10_kwh_cheap, TZ, [Reading(at("2024-06-04 10:00"), d(0)), Reading(at("2024-06-04 11:30"), d(15_000))]
    )

    assert b.energy.excl_vat == d("3.50")  # 10 kWh at 0.20 + 5 kWh at 0.30
    assert [(p.start_date_time, p.energy_kwh) for p in b.periods] == [
        (utc("2024-06-04 08:00"), d(10)),
        (utc("2024-06-04 09:00"), d(5)),  # 10 kWh reached after an hour at a steady 10 kW
    ]


def test_a_duration_threshold_splits_the_interval() -> None:
    b = bill(
        example("tariffrestriction_example_max_duration.json"),
        TZ,
        session("2024-06-06", ("10:00", 0), ("10:40", 6_000)),
    )

    assert b.energy.excl_vat == d("0.375")  # 4.5 kWh free before 10:30, then 1.5 kWh at 0.25
    assert [p.start_date_time for p in b.periods] == [utc("2024-06-06 08:00"), utc("2024-06-06 08:30")]


def test_the_local_clock_jump_of_summer_time() -> None:
    # On 2024-03-31 Amsterdam goes from 01:59:59 CET to 03:00 CEST at 01:00Z: the "until 02:30" price ends there.
    early = tariff(
        {"price_components": [{"type": "TIME", "price": 2.0, "step_size": 1}], "restrictions": {"end_time": "02:30"}},
        {"price_components": [{"type": "TIME", "price": 1.0, "step_size": 1}]},
    )

    b = bill(early, TZ, [Reading(utc("2024-03-31 00:00"), d(0)), Reading(utc("2024-03-31 02:00"), d(2_000))])

    assert b.time.excl_vat == 2 + 1
    assert [p.start_date_time for p in b.periods] == [utc("2024-03-31 00:00"), utc("2024-03-31 01:00")]


def test_without_a_tariff_nothing_costs_but_the_periods_are_given() -> None:
    b = bill(None, TZ, session("2024-06-04", ("14:00", 0), ("16:00", 20_000), ("16:40", 20_000)))

    assert (b.fixed, b.energy, b.time, b.parking, b.reservation, b.total, b.bound) == (ZERO,) * 6 + (None,)
    assert periods(b) == [
        row(utc("2024-06-04 12:00"), d(20), d(2), 0, 0),
        row(utc("2024-06-04 14:00"), 0, 0, hours(40), 0),
    ]
    assert {p.tariff_id for p in b.periods} == {None}


def test_an_interval_without_energy_between_two_readings_is_parking() -> None:
    # Charging, then an hour where the register did not move (no readings in between), then charging again.
    b = bill(
        example("tariff_13_simple_3hour_5parking.json"),
        TZ,
        session("2024-06-06", ("09:00", 0), ("10:00", 5_000), ("11:00", 5_000), ("12:00", 9_000)),
    )

    assert [(p.time_h, p.parking_time_h) for p in b.periods] == [(d(1), d(0)), (d(0), d(1)), (d(1), d(0))]
    assert pair(b.time) == (d("6.00"), d("6.60"))
    assert pair(b.parking) == (d("5.00"), d("6.00"))


@pytest.mark.parametrize(("vat", "incl"), [(None, d("2.50")), (0.0, d("2.50")), (21.0, d("3.025"))])
def test_vat_absent_zero_or_set(vat: float | None, incl: Decimal) -> None:
    component: dict[str, Any] = {"type": "ENERGY", "price": 0.25, "step_size": 1}
    if vat is not None:
        component["vat"] = vat
    flat = {"type": "FLAT", "price": 1.0, "vat": 10.0, "step_size": 1}  # its own rate on the same bill

    b = bill(
        tariff({"price_components": [flat, component]}), TZ, session("2024-06-04", ("10:00", 0), ("11:00", 10_000))
    )

    assert pair(b.energy) == (d("2.50"), incl)
    assert pair(b.total) == (d("3.50"), d("1.10") + incl)


def test_a_session_of_one_reading_costs_its_start_fee() -> None:
    b = bill(example("tariff_10_025kwh_parking_start.json"), TZ, session("2024-06-04", ("14:00", 0)))

    assert pair(b.total) == (d("0.50"), d("0.60"))
    assert b.periods == ()


def test_energy_is_rounded_once_on_the_session_total() -> None:
    # §3.5: 4.3 kWh at 0.20 then 1.1 kWh at 0.27, step 500 Wh: 5.4 kWh billed as 5.5, the surplus at 0.27.
    two_prices = tariff(
        {
            "price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 500}],
            "restrictions": {"end_time": "12:00"},
        },
        {"price_components": [{"type": "ENERGY", "price": 0.27, "step_size": 500}]},
    )

    b = bill(two_prices, TZ, session("2024-06-04", ("11:00", 0), ("12:00", 4_300), ("13:00", 5_400)))

    assert b.energy.excl_vat == d("1.184")


def test_a_register_going_down_is_refused() -> None:
    with pytest.raises(ValueError, match="register went down"):
        bill(None, TZ, session("2024-06-04", ("10:00", 5_000), ("11:00", 4_000)))


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        (d("13.975"), "EUR", d("13.98")),
        (d("0.305"), "EUR", d("0.31")),  # half up, not to even
        (d("-0.125"), "EUR", d("-0.13")),  # a credit mirrors its original
        (d("1234.5"), "JPY", d("1235")),
        (d("1.2345"), "KWD", d("1.235")),
    ],
)
def test_round_money_to_the_minor_unit_half_up(amount: Decimal, currency: str, rounded: Decimal) -> None:
    result = round_money(amount, currency)

    assert result == rounded
    assert result.as_tuple().exponent == rounded.as_tuple().exponent


# --- Properties ------------------------------------------------------------------------------------------------------

BASE = datetime(2024, 1, 1, tzinfo=UTC)
CLOCK = st.sampled_from(["00:00", "06:00", "09:30", "17:00", "22:00"])


def component(dims: list[str], *, positive: bool) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.sampled_from(dims),
            "price": st.integers(1 if positive else 0, 500).map(lambda c: c / 100),
            "step_size": st.just(1) if positive else st.sampled_from([1, 60, 300, 900, 1000]),
        },
        optional={"vat": st.sampled_from([0.0, 10.0, 20.0])},
    )


def price_bound(base: int) -> st.SearchStrategy[dict[str, float]]:
    """A min_price or max_price from base to base + 5 excl. VAT; incl. VAT (at most 1.00 more) or not."""
    return st.builds(
        lambda excl, vat, with_incl: (
            {"excl_vat": base + excl / 100} | ({"incl_vat": base + (excl + vat) / 100} if with_incl else {})
        ),
        st.integers(0, 500),
        st.integers(0, 100),
        st.booleans(),
    )


def tariffs(*, positive: bool = False) -> st.SearchStrategy[Tariff]:
    """Random tariffs. positive: prices > 0, step_size 1 and no kWh restrictions, so a longer session never costs
    less (rounding to steps, and the sub-second slices that kWh thresholds cut, move the rounding surplus between
    dimensions: §3.5 lets a longer session cost less then)."""
    restrictions: dict[str, st.SearchStrategy[Any]] = {
        "start_time": CLOCK,
        "end_time": CLOCK,
        "day_of_week": st.lists(st.sampled_from(list(DayOfWeek)), min_size=1, max_size=3, unique=True),
        "min_power": st.sampled_from([3.0, 11.0, 22.0]),
        "max_power": st.sampled_from([7.0, 16.0, 50.0]),
        "max_current": st.sampled_from([16.0, 32.0]),
        "min_duration": st.sampled_from([600, 3600]),
        "max_duration": st.sampled_from([1800, 7200]),
    }
    if not positive:
        restrictions |= {"min_kwh": st.sampled_from([1.0, 12.5]), "max_kwh": st.sampled_from([5.0, 20.0])}
    charging = st.fixed_dictionaries(
        {
            "price_components": st.lists(
                component(["FLAT", "ENERGY", "TIME", "PARKING_TIME"], positive=positive), min_size=1, max_size=3
            )
        },
        optional={"restrictions": st.fixed_dictionaries({}, optional=restrictions)},
    )
    reserving = st.fixed_dictionaries(
        {
            "price_components": st.lists(component(["FLAT", "TIME"], positive=positive), min_size=1, max_size=2),
            "restrictions": st.fixed_dictionaries(
                {"reservation": st.sampled_from(["RESERVATION", "RESERVATION_EXPIRES"])}
            ),
        }
    )
    return st.builds(
        lambda elements, floor, cap: tariff(*elements, **floor, **cap),
        st.lists(st.one_of(charging, reserving), min_size=1, max_size=4),
        st.one_of(st.just({}), price_bound(0).map(lambda p: {"min_price": p})),
        st.one_of(st.just({}), price_bound(7).map(lambda p: {"max_price": p})),  # above every min_price (<= 6.00)
    )


STEP = st.tuples(
    st.integers(0, 3 * 3600),  # seconds since the previous reading
    st.one_of(st.just(0), st.integers(1, 30_000)),  # Wh delivered: none is parking
    st.one_of(st.none(), st.integers(0, 60_000)),  # W
    st.one_of(st.none(), st.sampled_from([10, 32, 48])),  # A
)


def readings(start: datetime, steps: list[tuple[int, int, int | None, int | None]]) -> list[Reading]:
    result = [Reading(start, d(100))]
    for seconds, wh, w, a in steps:
        last = result[-1]
        result.append(
            Reading(
                last.timestamp + timedelta(seconds=seconds),
                last.energy_wh + wh,
                Decimal(w) if w is not None else None,
                Decimal(a) if a is not None else None,
            )
        )
    return result


START = st.integers(0, 365 * 86400).map(lambda s: BASE + timedelta(seconds=s))
RESERVED = st.one_of(st.none(), st.tuples(st.integers(0, 7200), st.booleans()))


def with_reservation(start: datetime, reserved: tuple[int, bool] | None) -> Reservation | None:
    return Reservation(start - timedelta(seconds=reserved[0]), start, reserved[1]) if reserved else None


PROPERTY = settings(max_examples=60, deadline=None)


@PROPERTY
@given(tariffs(), START, st.lists(STEP, max_size=6), RESERVED)
def test_no_cost_is_ever_below_zero(
    t: Tariff, start: datetime, steps: list[tuple[int, int, int | None, int | None]], reserved: tuple[int, bool] | None
) -> None:
    b = bill(t, TZ, readings(start, steps), reservation=with_reservation(start, reserved))

    for amount in (b.fixed, b.energy, b.time, b.parking, b.reservation):
        assert amount.excl_vat >= 0
        assert amount.incl_vat >= amount.excl_vat
    assert b.total.excl_vat >= 0
    assert b.total.incl_vat >= 0


@PROPERTY
@given(tariffs(positive=True), START, st.lists(STEP, min_size=1, max_size=5), STEP)
def test_the_cost_never_falls_as_the_session_goes_on(
    t: Tariff,
    start: datetime,
    steps: list[tuple[int, int, int | None, int | None]],
    more: tuple[int, int, int | None, int | None],
) -> None:
    before = bill(t, TZ, readings(start, steps))
    after = bill(t, TZ, readings(start, [*steps, more]))

    assert after.total.excl_vat >= before.total.excl_vat
    assert after.total.incl_vat >= before.total.incl_vat


@PROPERTY
@given(tariffs(), START, st.lists(STEP, max_size=6), RESERVED)
def test_min_price_and_max_price_always_hold(
    t: Tariff, start: datetime, steps: list[tuple[int, int, int | None, int | None]], reserved: tuple[int, bool] | None
) -> None:
    total = bill(t, TZ, readings(start, steps), reservation=with_reservation(start, reserved)).total

    if t.min_price is not None:
        assert total.excl_vat >= Decimal(str(t.min_price.excl_vat))
        assert t.min_price.incl_vat is None or total.incl_vat >= Decimal(str(t.min_price.incl_vat))
    if t.max_price is not None:
        assert total.excl_vat <= Decimal(str(t.max_price.excl_vat))
        assert t.max_price.incl_vat is None or total.incl_vat <= Decimal(str(t.max_price.incl_vat))


@PROPERTY
@given(st.one_of(st.none(), tariffs()), START, st.lists(STEP, max_size=6), RESERVED)
def test_the_periods_add_up_to_the_session(
    t: Tariff | None,
    start: datetime,
    steps: list[tuple[int, int, int | None, int | None]],
    reserved: tuple[int, bool] | None,
) -> None:
    rs = readings(start, steps)
    reservation = with_reservation(start, reserved)

    b = bill(t, TZ, rs, reservation=reservation)

    close = Decimal("1e-20")  # hours are seconds / 3600: equal to 28 significant digits
    energy = (rs[-1].energy_wh - rs[0].energy_wh) / 1000
    duration = Decimal((rs[-1].timestamp - rs[0].timestamp).total_seconds()) / 3600
    reserved_h = Decimal(reserved[0]) / 3600 if reserved else Decimal(0)
    assert sum(p.energy_kwh for p in b.periods) == energy == b.total_energy_kwh
    assert abs(sum(p.time_h + p.parking_time_h for p in b.periods) - duration) < close
    assert abs(sum(p.parking_time_h for p in b.periods) - b.total_parking_time_h) < close
    assert abs(sum(p.reservation_time_h for p in b.periods) - reserved_h) < close
    assert abs(b.total_time_h - duration) < close
    starts = [p.start_date_time for p in b.periods]
    assert starts == sorted(starts)
    assert {p.tariff_id for p in b.periods} <= {t.id if t else None}
