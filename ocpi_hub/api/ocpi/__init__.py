"""The /ocpi interface: one controller per OCPI module, the transport rules in `transport`."""
