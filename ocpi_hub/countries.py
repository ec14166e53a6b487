"""ISO 3166-1 country codes: OCPI's Location.country is alpha-3, while sources also send alpha-2 (docs/ocpi.md §5.4)."""

from __future__ import annotations

from functools import lru_cache

import pycountry


# Every location record asks for its country. The answer depends only on the code (pycountry's tables do not change
# while the process runs), so a cache of it is exact; bounded, as codes come from the records.
@lru_cache(maxsize=512)
def alpha3_country(code: str) -> str | None:
    """The alpha-3 code of an ISO 3166-1 alpha-2 or alpha-3 code in any letter case, or None if there is none."""
    match len(code):
        case 2:
            country = pycountry.countries.get(alpha_2=code)
        case 3:
            country = pycountry.countries.get(alpha_3=code)
        case _:
            return None
    return None if country is None else str(country.alpha_3)
