"""The scheduled location sync (issue §4): EvseVO location records from a file, directory or URL into the store."""
