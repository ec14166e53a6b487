"""IANA time zone of a point, for Location.time_zone (OCPI 2.2.1 docs/ocpi.md §5.4), which no source record carries."""

from __future__ import annotations

from functools import cache

from timezonefinder import TimezoneFinder


@cache
def _finder() -> TimezoneFinder:
    # Created on first use, not at import: it maps the zone data files.
    return TimezoneFinder()


def time_zone_at(latitude: float, longitude: float) -> str | None:
    """The IANA zone name at the point, or None when there is none: invalid coordinates or open sea.

    Open sea counts as "none" (timezonefinder's `Etc/GMT±N` ocean zones are left out): no charge point stands
    there, so such coordinates are wrong (0,0 is a common placeholder) rather than a place to serve.
    """
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):  # also False for NaN
        return None
    return _finder().timezone_at_land(lat=latitude, lng=longitude)
