"""Frozen data of isolate: profiles, locks, manifests, results. No I/O here."""
