"""The EvseVO family of location records (Shell Recharge B2B EV Locations) and their conversion to OCPI 2.2.1."""
