"""Weir cni."""
