"""Pushes of Location, EVSE and Connector changes to the eMSPs' Locations Receivers: the outbox written with each
change (outbox), the calls one delivery makes (deliver), when failures are retried (retry), the loop (worker)."""
