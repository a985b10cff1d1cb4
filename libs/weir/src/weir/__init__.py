"""Weir shared library."""
