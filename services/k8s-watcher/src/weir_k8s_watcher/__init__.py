"""Weir k8s-watcher."""
