"""The internal API of the CSMS (seed 002, base path /api/v0): its request bodies and their conversion to OCPI."""
