"""A priced session (pricing.Bill) as OCPI shows it: charging periods, Prices, and a CDR's totals
(docs/cpo-modules.md §5.3, §5.5, D4, D9).

Rounding happens here and only here: each period volume to 6 decimals (a few milliseconds, a milliwatt-hour), each
reported amount to the currency's minor unit (pricing.round_money). A CDR's total_energy, total_time and
total_parking_time are the sums of its reported period volumes, so that an eMSP adding them up finds our totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from ocpi_hub import pricing
from ocpi_hub.ocpi.sessions import CdrDimension, CdrDimensionType, ChargingPeriod
from ocpi_hub.ocpi.tariffs import Price, Tariff, TariffDimensionType

_VOLUME = Decimal("0.000001")


def _volume(value: Decimal) -> Decimal:
    return value.quantize(_VOLUME, rounding=ROUND_HALF_UP)


def period(p: pricing.Period) -> ChargingPeriod | None:
    """One charging period with its non-zero dimensions; None when it holds nothing (no time passed)."""
    volumes = [
        (CdrDimensionType.ENERGY, p.energy_kwh),
        (CdrDimensionType.TIME, p.time_h),
        (CdrDimensionType.PARKING_TIME, p.parking_time_h),
        (CdrDimensionType.RESERVATION_TIME, p.reservation_time_h),
    ]
    dimensions = [CdrDimension(type=kind, volume=float(_volume(v))) for kind, v in volumes if _volume(v)]
    if not dimensions:
        return None
    return ChargingPeriod(start_date_time=p.start_date_time, dimensions=dimensions, tariff_id=p.tariff_id)


def empty_period(start: datetime, tariff_id: str | None) -> ChargingPeriod:
    """The one period of a session that lasted no time (a CDR has at least one)."""
    return ChargingPeriod(
        start_date_time=start, dimensions=[CdrDimension(type=CdrDimensionType.TIME, volume=0.0)], tariff_id=tariff_id
    )


def periods(bill: pricing.Bill, *, closed_only: bool) -> list[ChargingPeriod]:
    """The bill's periods; `closed_only`: without the last one, which grows until the session ends (an eMSP holds
    what we sent and a PATCH appends, so we only send periods that will not change, docs/cpo-modules.md §4.7)."""
    shown = bill.periods[:-1] if closed_only else bill.periods
    return [c for c in map(period, shown) if c is not None]


def price(amount: pricing.Amount, currency: str, *, sign: int = 1) -> Price:
    return Price(
        excl_vat=float(sign * pricing.round_money(amount.excl_vat, currency)),
        incl_vat=float(sign * pricing.round_money(amount.incl_vat, currency)),
    )


def _sum(shown: Sequence[ChargingPeriod], *kinds: CdrDimensionType) -> Decimal:
    return sum(
        (Decimal(str(d.volume)) for c in shown for d in c.dimensions if d.type in kinds),
        start=Decimal(0),
    )


@dataclass(frozen=True)
class Totals:
    """The CDR fields that follow from the bill."""

    total_cost: Price
    total_fixed_cost: Price | None
    total_energy: float
    total_energy_cost: Price | None
    total_time: float
    total_time_cost: Price | None
    total_parking_time: float | None
    total_parking_cost: Price | None
    total_reservation_cost: Price | None
    remark: str | None


def totals(bill: pricing.Bill, shown: Sequence[ChargingPeriod], tariff: Tariff | None, currency: str) -> Totals:
    """A cost field is present when the Tariff prices its dimension; without a Tariff only total_cost, zero, which
    the CDR must carry (docs/cpo-modules.md §3.9)."""
    priced = {c.type for e in tariff.elements for c in e.price_components} if tariff else set()
    reserved = tariff is not None and any(e.restrictions and e.restrictions.reservation for e in tariff.elements)

    def cost(amount: pricing.Amount, *dimensions: TariffDimensionType) -> Price | None:
        return price(amount, currency) if priced.intersection(dimensions) else None

    parking = _sum(shown, CdrDimensionType.PARKING_TIME)
    bound = {"min_price": "the Tariff's min_price", "max_price": "the Tariff's max_price"}.get(bill.bound or "")
    return Totals(
        total_cost=price(bill.total, currency),
        total_fixed_cost=cost(bill.fixed, TariffDimensionType.FLAT),
        total_energy=float(_sum(shown, CdrDimensionType.ENERGY)),
        total_energy_cost=cost(bill.energy, TariffDimensionType.ENERGY),
        total_time=float(_sum(shown, CdrDimensionType.TIME, CdrDimensionType.PARKING_TIME)),
        total_time_cost=cost(bill.time, TariffDimensionType.TIME),
        total_parking_time=float(parking) if parking else None,
        total_parking_cost=cost(bill.parking, TariffDimensionType.PARKING_TIME),
        total_reservation_cost=price(bill.reservation, currency) if reserved else None,
        # D9: the components are reported as computed; the remark says why they do not add up to the total.
        remark=f"total_cost set by {bound}" if bound else None,
    )
