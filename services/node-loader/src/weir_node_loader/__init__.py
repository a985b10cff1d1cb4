"""Weir node-loader."""
