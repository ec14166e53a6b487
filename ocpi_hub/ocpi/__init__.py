"""OCPI wire models, one module per OCPI module. Pure: no I/O, no imports from the rest of ocpi_hub."""
