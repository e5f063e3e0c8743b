"""Scorer backends. Import concrete classes from their modules or from :mod:`ledom_reason`."""
