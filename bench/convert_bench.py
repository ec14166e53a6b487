"""CPU cost of the EvseVO → OCPI conversion (ocpi_hub.evsevo.convert), per location (issue 15).

Generates the records of bench/sync_bench.py (4 EVSEs of 1 or 2 connectors, each with a tariff), decodes them as
the sync does, then converts them as the sync does (`location_to_ocpi`, STRICT, the bench's parties) and prints the
CPU time (`time.process_time`) per location of the best of --rounds rounds; decoding is timed apart. With --profile,
one more round under cProfile and its top functions by own time. A script, not a test: it asserts nothing.

    python bench/convert_bench.py [--locations 2000] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from sync_bench import PARTIES, records  # the records of the sync benchmark

from ocpi_hub.evsevo.convert import Mode, decode_location_record, location_to_ocpi
from ocpi_hub.evsevo.models import EvseVOLocation
from ocpi_hub.ocpi.common import utc_now
from ocpi_hub.settings import Settings


def best_cpu(rounds: int, work: Callable[[], object]) -> float:
    """The least CPU time of `rounds` runs of `work`, in seconds."""
    times = []
    for _ in range(rounds):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--locations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also profile one round with cProfile")
    args = parser.parse_args()

    settings = Settings(parties=PARTIES)  # the parties sync_bench syncs with; the rest does not matter here
    parties = [p.key for p in settings.parties]
    default_party = settings.default_party.key
    raw = list(records(args.locations, set()))

    def decode() -> list[EvseVOLocation]:
        return [decode_location_record(body) for body in raw]

    decoded = decode()

    def convert() -> None:
        # As ocpi_hub.sync.run._Run.convert does, the clock read per record.
        for record in decoded:
            location_to_ocpi(
                record, location_id=None, parties=parties, default_party=default_party, mode=Mode.STRICT, now=utc_now()
            )

    convert()  # warm-up: the time zone finder's data and lazily built tables are loaded once per process
    decode_s = best_cpu(args.rounds, decode)
    convert_s = best_cpu(args.rounds, convert)
    per = 1e6 / args.locations
    sys.stdout.write(
        f"{args.locations} locations, best of {args.rounds} (CPU time): "
        f"convert {convert_s * per:.1f} µs per location, decode {decode_s * per:.1f} µs per location\n"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(convert)
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
