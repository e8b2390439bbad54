"""sleepguard: keeps a sleeping in-memory BABS10 back end awake, backed up and restored."""

__version__ = "0.1.0"
