"""Readable (rich) views of analyses and cases, shared by `analyze` and `cases show`."""
