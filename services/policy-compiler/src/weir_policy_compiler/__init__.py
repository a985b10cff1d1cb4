"""Weir policy-compiler."""
