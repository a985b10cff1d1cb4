"""Weir identity-allocator."""
