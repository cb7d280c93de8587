"""stopitd: the daemon and staff tools behind an abuse/harassment reporting address."""

__version__ = "0.1.0"
