"""Weir lb-programmer."""
