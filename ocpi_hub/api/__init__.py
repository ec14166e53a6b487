"""HTTP boundary: the OCPI interface partners call (`ocpi/`) and the internal API operators call (`internal/`)."""
