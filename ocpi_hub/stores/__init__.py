"""Stores: every write of an OCPI module's objects, what really changed, and last_updated.

A store never commits: its caller queues the changes it returns in the outbox and commits once (push/outbox.py).
"""
