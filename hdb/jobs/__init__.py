"""Maintenance jobs on the HDB directory: ``check``, ``retain`` and ``load``."""
