"""The price of a charging session from one Tariff (docs/cpo-modules.md §3.5, §12), in exact decimals.

Pure: no database, no clock. The caller gives the Tariff in force when the session started, the Location's time
zone and the meter readings so far (the first one at the session start), and gets the charging periods and the
costs per dimension. Rounding to the currency happens only where an amount is reported (`round_money`, §10 D4).

How: the session is cut into slices over which every restriction keeps its value (a reading, a local HH:MM or
midnight, a DST change, a duration or kWh threshold, interpolating energy linearly inside an interval). Each slice
is priced per dimension by the first element that matches at its start (§3.5 rule 1), adjacent slices priced by the
same elements form one charging period (§5.3), and step_size is applied once at the end (§3.5).

Choices where the reference is silent (docs/cpo-modules.md §10):
- Between two readings, energy flowed (the register went up): charging, the TIME dimension; it did not: parking,
  PARKING_TIME. A register that goes down is refused (ValueError): meter resets are the caller's to resolve.
- D14: an interval's power and current are those of the reading that ends it. Without a power, the interval's
  average (Δenergy/Δtime); without a current, the current is unknown and a min_current or max_current restriction
  does not hold (guessing phases and voltage would price on a number nobody measured).
- D2: the charging part pays the FLAT of the element matching at the session start, once (at the state of the first
  interval); a reservation pays, on top, the FLAT of the reservation element matching when it began.
- D3: a reservation that did not expire (used or cancelled) is priced by RESERVATION elements; an expired one by
  RESERVATION_EXPIRES elements first, then RESERVATION ones, for TIME (the spec's note) and for FLAT alike.
  Reservation time is not part of `total_time_h`. The reservation phase ends at the latest at the first reading.
- ENERGY step_size rounds the session's whole energy (priced or not) with the step of the last ENERGY component
  used; the surplus is billed at that component's price. TIME/PARKING_TIME round only the priced time of the
  dimension that was priced last (§3.5, bugfix reading, §12 W5).
- An empty `day_of_week` list restricts nothing, like an absent one.
- min_price/max_price clamp the total only (D9: components stay unadjusted); should a tariff's bounds cross,
  max_price wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby, pairwise
from typing import Literal
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision

from ocpi_hub.ocpi.tariffs import (
    DayOfWeek,
    PriceComponent,
    ReservationRestrictionType,
    Tariff,
    TariffElement,
    TariffRestrictions,
)
from ocpi_hub.ocpi.tariffs import TariffDimensionType as Dim


@dataclass(frozen=True, slots=True)
class Reading:
    """One meter reading: the register (cumulative Wh, as OCPP reports it) at an instant (aware, UTC)."""

    timestamp: datetime
    energy_wh: Decimal
    power_w: Decimal | None = None
    current_a: Decimal | None = None  # summed over the phases


@dataclass(frozen=True, slots=True)
class Reservation:
    """The reservation phase before charging: from its creation until charging began, it was cancelled, or it
    expired (`expired`)."""

    start: datetime
    end: datetime
    expired: bool = False


@dataclass(frozen=True, slots=True)
class Amount:
    excl_vat: Decimal
    incl_vat: Decimal


ZERO = Amount(Decimal(0), Decimal(0))


@dataclass(frozen=True, slots=True)
class Period:
    """A charging period: where the price that applies changes, a new one begins. Volumes are exact."""

    start_date_time: datetime
    tariff_id: str | None
    energy_kwh: Decimal = Decimal(0)
    time_h: Decimal = Decimal(0)  # charging
    parking_time_h: Decimal = Decimal(0)
    reservation_time_h: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Bill:
    periods: tuple[Period, ...]
    fixed: Amount  # FLAT of the charging part
    energy: Amount
    time: Amount
    parking: Amount
    reservation: Amount  # reservation TIME and FLAT
    total: Amount  # the sum, after min_price and max_price
    bound: str | None  # "min_price" or "max_price" when one changed the total
    # The session's volumes, as the CDR reports them (§5.3): total_time_h is charging plus parking, without the
    # reservation (D3); each is the sum of the periods' volumes.
    total_energy_kwh: Decimal = Decimal(0)
    total_time_h: Decimal = Decimal(0)
    total_parking_time_h: Decimal = Decimal(0)
    total_reservation_time_h: Decimal = Decimal(0)


_Kind = Literal["reservation", "charging", "parking"]
_Bucket = Literal["fixed", "energy", "time", "parking", "reservation"]

# The dimensions a slice of each kind is priced in; FLAT is priced once per phase, not per slice (D2).
_PRICED: dict[_Kind, tuple[Dim, ...]] = {
    "reservation": (Dim.TIME,),
    "charging": (Dim.ENERGY, Dim.TIME),
    "parking": (Dim.PARKING_TIME,),
}
# Quantities are kept in Wh and seconds (exact); prices are per kWh and per hour.
_PER_UNIT = {Dim.ENERGY: Decimal(1000), Dim.TIME: Decimal(3600), Dim.PARKING_TIME: Decimal(3600), Dim.FLAT: Decimal(1)}
_WEEKDAYS = tuple(DayOfWeek)  # in the order of datetime.weekday()
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class _Slice:
    """A stretch over which every restriction keeps its value; they are evaluated at `start`."""

    kind: _Kind
    start: datetime
    end: datetime
    energy_wh: Decimal  # delivered within the slice
    energy_before_wh: Decimal  # delivered in the session before `start` (min_kwh, max_kwh)
    elapsed_s: Decimal  # since the session (or reservation) began, at `start` (min_duration, max_duration)
    power_kw: Decimal | None
    current_a: Decimal | None

    @property
    def seconds(self) -> Decimal:
        return _seconds(self.start, self.end)


_Choice = tuple[int, PriceComponent]  # the matching element's index and its component of the dimension


@dataclass(frozen=True, slots=True)
class _Priced:
    slice: _Slice
    choices: tuple[_Choice | None, ...]  # one per dimension of _PRICED[slice.kind]

    def choice(self, dim: Dim) -> _Choice | None:
        dims = _PRICED[self.slice.kind]
        return self.choices[dims.index(dim)] if dim in dims else None

    @property
    def key(self) -> tuple[object, ...]:
        # A new charging period begins where the kind or any element chosen changes (§5.3).
        return (self.slice.kind, *(c[0] if c else None for c in self.choices))


def bill(
    tariff: Tariff | None,
    time_zone: str,
    readings: Sequence[Reading],
    *,
    reservation: Reservation | None = None,
) -> Bill:
    """The bill of a session so far (or finished): its charging periods and costs, unrounded.

    `readings` in time order, the first at the session start, the last "now" or the stop; they may be empty when a
    reservation never became a session. Without a tariff nothing costs anything but the periods are still given.
    """
    _check(readings, reservation)
    zone = ZoneInfo(time_zone)
    elements = list(enumerate(tariff.elements)) if tariff is not None else []
    restrictions = [e.restrictions for _, e in elements if e.restrictions is not None]
    charging_elements = [(i, e) for i, e in elements if not _reserves(e)]

    slices: list[_Slice] = []
    lines: dict[tuple[_Bucket, int, Dim], _Line] = {}
    if reservation is not None:
        candidates = _reservation_elements(elements, expired=reservation.expired)
        phase = list(_reservation_slices(reservation, readings, restrictions, zone))
        slices += phase
        start = phase[0] if phase else _instant(reservation.start, "reservation")
        _add(lines, "reservation", _choose(candidates, Dim.FLAT, start, zone), Decimal(1))
    else:
        candidates = []
    session = list(_session_slices(readings, restrictions, zone))
    slices += session
    if readings:
        start = session[0] if session else _instant(readings[0].timestamp, "charging")
        _add(lines, "fixed", _choose(charging_elements, Dim.FLAT, start, zone), Decimal(1))

    priced = [_price(s, candidates if s.kind == "reservation" else charging_elements, zone) for s in slices]
    for p in priced:
        s = p.slice
        if s.kind == "reservation":
            _add(lines, "reservation", p.choice(Dim.TIME), s.seconds)
        elif s.kind == "charging":
            _add(lines, "energy", p.choice(Dim.ENERGY), s.energy_wh)
            _add(lines, "time", p.choice(Dim.TIME), s.seconds)
        else:
            _add(lines, "parking", p.choice(Dim.PARKING_TIME), s.seconds)
    _round_energy(priced, lines)
    _round_time(priced, lines)
    _round_reservation(priced, lines)

    buckets = {b: _sum(line.amount() for line in lines.values() if line.bucket == b) for b in _BUCKETS}
    total, bound = _bounded(_sum(buckets.values()), tariff)
    tariff_id = tariff.id if tariff is not None else None
    return Bill(
        periods=tuple(_periods(priced, tariff_id)),
        fixed=buckets["fixed"],
        energy=buckets["energy"],
        time=buckets["time"],
        parking=buckets["parking"],
        reservation=buckets["reservation"],
        total=total,
        bound=bound,
        total_energy_kwh=_sum_of(session, "charging", energy=True) / 1000,
        total_time_h=_seconds(readings[0].timestamp, readings[-1].timestamp) / 3600 if readings else Decimal(0),
        total_parking_time_h=_sum_of(session, "parking") / 3600,
        total_reservation_time_h=_sum_of(slices, "reservation") / 3600,
    )


def round_money(amount: Decimal, currency: str) -> Decimal:
    """The amount rounded half up to the currency's minor unit (D4): EUR 2 decimals, JPY 0, KWD 3 (CLDR's data).

    Half up is away from zero for negative amounts too, so a credit CDR mirrors its original exactly.
    """
    return amount.quantize(Decimal(1).scaleb(-get_currency_precision(currency)), rounding=ROUND_HALF_UP)


# --- Slicing the session ---------------------------------------------------------------------------------------------


def _check(readings: Sequence[Reading], reservation: Reservation | None) -> None:
    instants = [r.timestamp for r in readings] + ([reservation.start, reservation.end] if reservation else [])
    if any(t.utcoffset() is None for t in instants):
        raise ValueError("readings and reservations need aware timestamps")
    for a, b in pairwise(readings):
        if b.timestamp < a.timestamp:
            raise ValueError(f"readings out of time order at {b.timestamp.isoformat()}")
        if b.energy_wh < a.energy_wh:
            raise ValueError(f"the energy register went down at {b.timestamp.isoformat()}")
    if reservation is not None and reservation.end < reservation.start:
        raise ValueError("the reservation ends before it starts")


def _reservation_slices(
    reservation: Reservation, readings: Sequence[Reading], restrictions: list[TariffRestrictions], zone: ZoneInfo
) -> Iterator[_Slice]:
    # The reservation phase ends when charging begins at the latest (clocks of charger and platform may differ).
    end = min(reservation.end, readings[0].timestamp) if readings else reservation.end
    end = max(end, reservation.start)
    zero = Decimal(0)
    yield from _split(
        "reservation", reservation.start, end, zero, zero, None, None, reservation.start, restrictions, zone
    )


def _session_slices(
    readings: Sequence[Reading], restrictions: list[TariffRestrictions], zone: ZoneInfo
) -> Iterator[_Slice]:
    if not readings:
        return
    first = readings[0]
    for a, b in pairwise(readings):
        delivered = b.energy_wh - a.energy_wh
        seconds = _seconds(a.timestamp, b.timestamp)
        if b.power_w is not None:
            power_kw: Decimal | None = b.power_w / 1000
        else:  # D14: the interval's average; Wh per second times 3.6 is kW
            power_kw = delivered * Decimal("3.6") / seconds if seconds else None
        yield from _split(
            "charging" if delivered > 0 else "parking",
            a.timestamp,
            b.timestamp,
            a.energy_wh - first.energy_wh,
            b.energy_wh - first.energy_wh,
            power_kw,
            b.current_a,
            first.timestamp,
            restrictions,
            zone,
        )


def _split(
    kind: _Kind,
    a: datetime,
    b: datetime,
    energy_a: Decimal,
    energy_b: Decimal,
    power_kw: Decimal | None,
    current_a: Decimal | None,
    origin: datetime,
    restrictions: list[TariffRestrictions],
    zone: ZoneInfo,
) -> Iterator[_Slice]:
    """The interval [a, b] cut where a restriction may flip; energy grows linearly over it (§5.3: the CPO may
    interpolate)."""
    span = _micros(b - a)
    delivered = energy_b - energy_a
    knots = [(a, energy_a), (b, energy_b)]
    for instant in _time_knots(a, b, origin, restrictions, zone):
        knots.append((instant, energy_a + delivered * _micros(instant - a) / span))
    for threshold in _kwh_thresholds(restrictions):
        if energy_a < threshold < energy_b:
            at = a + _MICROSECOND * round((threshold - energy_a) / delivered * span)
            knots.append((at, threshold))
    # Instants are whole microseconds, so an interpolated one may land a hair off: keep the energy monotonic.
    running, monotonic = energy_a, []
    for at, energy in sorted(knots):
        running = min(max(running, energy), energy_b)
        monotonic.append((at, running))
    for (start, energy_start), (end, energy_end) in pairwise(monotonic):
        if end == start and energy_end == energy_start:
            continue
        yield _Slice(
            kind, start, end, energy_end - energy_start, energy_start, _seconds(origin, start), power_kw, current_a
        )


def _time_knots(
    a: datetime, b: datetime, origin: datetime, restrictions: list[TariffRestrictions], zone: ZoneInfo
) -> list[datetime]:
    """The instants strictly inside (a, b) where a restriction on the clock, the date or the duration may flip."""
    clock = {time(0)} | {_clock(x) for r in restrictions for x in (r.start_time, r.end_time) if x is not None}
    knots: list[datetime] = list(_offset_changes(a, b, zone))
    day, last = a.astimezone(zone).date() - timedelta(days=1), b.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        # Both folds: in the hour the clocks go back, a local HH:MM happens twice.
        knots += [datetime.combine(day, t, zone).replace(fold=f).astimezone(UTC) for t in clock for f in (0, 1)]
        day += timedelta(days=1)
    knots += [origin + timedelta(seconds=d) for r in restrictions for d in (r.min_duration, r.max_duration) if d]
    return sorted({k for k in knots if a < k < b})


def _offset_changes(a: datetime, b: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    """The instants in (a, b] where the UTC offset changes: the local clock jumps there, so a time-of-day
    restriction can flip at an instant no local HH:MM names (02:30 does not exist on the spring-forward night)."""
    step = timedelta(hours=6)  # offsets change months apart: at most one change per step
    low = a
    while low < b:
        high = min(low + step, b)
        if _offset(low, zone) != _offset(high, zone):
            before, after = low, high
            while after - before > _MICROSECOND:
                middle = before + (after - before) // 2
                before, after = (middle, after) if _offset(middle, zone) == _offset(before, zone) else (before, middle)
            yield after
        low = high


def _kwh_thresholds(restrictions: list[TariffRestrictions]) -> set[Decimal]:
    return {_dec(x) * 1000 for r in restrictions for x in (r.min_kwh, r.max_kwh) if x is not None}


def _instant(at: datetime, kind: _Kind) -> _Slice:
    """An empty slice: the state at an instant when no interval follows it (a session of one reading)."""
    zero = Decimal(0)
    return _Slice(kind, at, at, zero, zero, zero, None, None)


# --- Choosing elements (§3.4, §3.5) ----------------------------------------------------------------------------------


def _price(s: _Slice, candidates: list[tuple[int, TariffElement]], zone: ZoneInfo) -> _Priced:
    return _Priced(s, tuple(_choose(candidates, dim, s, zone) for dim in _PRICED[s.kind]))


def _reserves(element: TariffElement) -> bool:
    return element.restrictions is not None and element.restrictions.reservation is not None


def _reservation_elements(
    elements: list[tuple[int, TariffElement]], *, expired: bool
) -> list[tuple[int, TariffElement]]:
    """The elements of the reservation phase, in the order they are tried (§3.5 Reservations, D3)."""

    def of(kind: ReservationRestrictionType) -> list[tuple[int, TariffElement]]:
        return [(i, e) for i, e in elements if e.restrictions is not None and e.restrictions.reservation == kind]

    reserved = of(ReservationRestrictionType.RESERVATION)
    # An expired reservation matches both kinds, and the RESERVATION_EXPIRES ones win whatever the order.
    return of(ReservationRestrictionType.RESERVATION_EXPIRES) + reserved if expired else reserved


def _choose(candidates: list[tuple[int, TariffElement]], dim: Dim, s: _Slice, zone: ZoneInfo) -> _Choice | None:
    """The first element with a component of `dim` whose restrictions all hold (§3.5 rule 1); None: free."""
    for index, element in candidates:
        component = next((c for c in element.price_components if c.type == dim), None)
        if component is not None and _holds(element.restrictions, s, zone):
            return index, component
    return None


def _holds(r: TariffRestrictions | None, s: _Slice, zone: ZoneInfo) -> bool:
    """All restrictions hold at the slice's start; local clock, date and weekday of that instant (§3.4, D5)."""
    if r is None:
        return True
    local = s.start.astimezone(zone)
    day = local.date().isoformat()
    return (
        _in_window(local.time(), r.start_time, r.end_time)
        and (r.start_date is None or day >= r.start_date)
        and (r.end_date is None or day < r.end_date)
        and (not r.day_of_week or _WEEKDAYS[local.weekday()] in r.day_of_week)
        and _within(s.energy_before_wh / 1000, r.min_kwh, r.max_kwh)
        and _within(s.current_a, r.min_current, r.max_current)
        and _within(s.power_kw, r.min_power, r.max_power)
        and _within(s.elapsed_s, r.min_duration, r.max_duration)
    )


def _in_window(now: time, start: str | None, end: str | None) -> bool:
    low = _clock(start) if start is not None else time(0)
    if end is None or end == "00:00":  # "00:00" as end_time: until the end of the day (§3.4)
        return now >= low
    high = _clock(end)
    if low < high:
        return low <= now < high
    return now >= low or now < high  # end before start: the window wraps past midnight


def _within(value: Decimal | None, low: float | None, high: float | None) -> bool:
    """min inclusive, max exclusive (§3.4); an unknown value meets no bound (D14)."""
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= _dec(low)) and (high is None or value < _dec(high))


# --- Costs -----------------------------------------------------------------------------------------------------------

_BUCKETS: tuple[_Bucket, ...] = ("fixed", "energy", "time", "parking", "reservation")


@dataclass(slots=True)
class _Line:
    """What one component bills: a quantity in Wh, seconds or occurrences, summed before pricing (fewer
    divisions, so results like 5 min at 1.20/h = 0.10 stay exact)."""

    bucket: _Bucket
    component: PriceComponent
    quantity: Decimal

    def amount(self) -> Amount:
        excl = _dec(self.component.price) * self.quantity / _PER_UNIT[self.component.type]
        if self.component.vat is None:  # no VAT applies (§3.5, our choice): incl = excl
            return Amount(excl, excl)
        return Amount(excl, excl * (100 + _dec(self.component.vat)) / 100)


def _add(lines: dict[tuple[_Bucket, int, Dim], _Line], bucket: _Bucket, choice: _Choice | None, q: Decimal) -> None:
    if choice is None:
        return
    index, component = choice
    line = lines.setdefault((bucket, index, component.type), _Line(bucket, component, Decimal(0)))
    line.quantity += q


def _round_energy(priced: list[_Priced], lines: dict[tuple[_Bucket, int, Dim], _Line]) -> None:
    """§3.5: once per session, the whole energy up to the step of the last ENERGY component used; the surplus at
    that component's price. Switching elements never rounds."""
    used = [c for p in priced if (c := p.choice(Dim.ENERGY))]
    if used:
        total = sum((p.slice.energy_wh for p in priced), Decimal(0))
        _add(lines, "energy", used[-1], _step_up(total, used[-1][1].step_size) - total)


def _round_time(priced: list[_Priced], lines: dict[tuple[_Bucket, int, Dim], _Line]) -> None:
    """§3.5 (bugfix reading, §12 W5): TIME and PARKING_TIME share one rounding. Whichever was priced last rounds its
    priced total with its step, the other stays exact; the surplus is billed at that last price."""
    timed = [
        (p.slice.kind, c)
        for p in priced
        if p.slice.kind != "reservation" and (c := p.choice(Dim.TIME) or p.choice(Dim.PARKING_TIME))
    ]
    if timed:
        kind, last = timed[-1]
        dim = Dim.TIME if kind == "charging" else Dim.PARKING_TIME
        total = sum((p.slice.seconds for p in priced if p.slice.kind == kind and p.choice(dim)), Decimal(0))
        _add(lines, "time" if kind == "charging" else "parking", last, _step_up(total, last[1].step_size) - total)


def _round_reservation(priced: list[_Priced], lines: dict[tuple[_Bucket, int, Dim], _Line]) -> None:
    """Reservation TIME is rounded with its own step when the reservation phase ends (§3.5 Reservations)."""
    timed = [p for p in priced if p.slice.kind == "reservation" and p.choice(Dim.TIME)]
    if timed:
        last = timed[-1].choice(Dim.TIME)
        assert last is not None
        total = sum((p.slice.seconds for p in timed), Decimal(0))
        _add(lines, "reservation", last, _step_up(total, last[1].step_size) - total)


def _step_up(quantity: Decimal, step: int) -> Decimal:
    """Up to a whole number of steps; a quantity on a step stays (§3.5: "greater than" read as "at least")."""
    if step <= 0:  # the model allows 0: no granularity
        return quantity
    steps, rest = divmod(quantity, step)
    return (steps + (1 if rest else 0)) * step


def _bounded(total: Amount, tariff: Tariff | None) -> tuple[Amount, str | None]:
    """min_price and max_price bound excl. and incl. VAT each on its own, incl. only when given (§3.5, §12 W4)."""
    excl, incl, bound = total.excl_vat, total.incl_vat, None
    if tariff is not None and (floor := tariff.min_price) is not None:
        excl = max(excl, _dec(floor.excl_vat))
        incl = max(incl, _dec(floor.incl_vat)) if floor.incl_vat is not None else incl
        bound = "min_price" if (excl, incl) != (total.excl_vat, total.incl_vat) else None
    if tariff is not None and (cap := tariff.max_price) is not None:
        floored = (excl, incl)
        excl = min(excl, _dec(cap.excl_vat))
        incl = min(incl, _dec(cap.incl_vat)) if cap.incl_vat is not None else incl
        bound = "max_price" if (excl, incl) != floored else bound
    return Amount(excl, incl), bound


# --- Periods ---------------------------------------------------------------------------------------------------------


def _periods(priced: list[_Priced], tariff_id: str | None) -> Iterator[Period]:
    """Adjacent slices priced by the same elements form one period (§5.3); volumes are summed, never rounded."""
    for _, group in groupby(priced, key=lambda p: p.key):
        slices = [p.slice for p in group]
        yield Period(
            start_date_time=slices[0].start,
            tariff_id=tariff_id,
            energy_kwh=_sum_of(slices, "charging", energy=True) / 1000,
            time_h=_sum_of(slices, "charging") / 3600,
            parking_time_h=_sum_of(slices, "parking") / 3600,
            reservation_time_h=_sum_of(slices, "reservation") / 3600,
        )


# --- Small helpers ---------------------------------------------------------------------------------------------------


def _sum_of(slices: Sequence[_Slice], kind: _Kind, *, energy: bool = False) -> Decimal:
    """Seconds (or Wh) of the slices of one kind."""
    return sum((s.energy_wh if energy else s.seconds for s in slices if s.kind == kind), Decimal(0))


def _sum(amounts: Iterable[Amount]) -> Amount:
    excl, incl = Decimal(0), Decimal(0)
    for a in amounts:
        excl, incl = excl + a.excl_vat, incl + a.incl_vat
    return Amount(excl, incl)


def _dec(x: float) -> Decimal:
    return Decimal(str(x))  # the number as the JSON wrote it (0.1, not 0.1000000000000000055...)


def _clock(hhmm: str) -> time:
    return time(int(hhmm[:2]), int(hhmm[3:]))


def _micros(d: timedelta) -> int:
    return d // _MICROSECOND


def _seconds(a: datetime, b: datetime) -> Decimal:
    return Decimal(_micros(b - a)) / 1_000_000


def _offset(at: datetime, zone: ZoneInfo) -> timedelta | None:
    return at.astimezone(zone).utcoffset()
