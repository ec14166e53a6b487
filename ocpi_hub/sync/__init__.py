"""The scheduled location sync (README: "The location sync"): EvseVO location records from a file, directory or URL into
the store."""
