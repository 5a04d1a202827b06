"""nox sessions of isolate, imported by noxfile.py."""
