"""Weir bandwidth-manager."""
