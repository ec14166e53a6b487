"""ocpi-hub: the OCPI 2.2.1 / 2.2 service of a charge point operator."""
