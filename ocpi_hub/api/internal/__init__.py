"""The internal API `/api/v0` of the seed, for the operator's own systems."""
