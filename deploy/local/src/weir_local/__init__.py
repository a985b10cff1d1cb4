"""Weir local cluster: a Kubernetes API server and the dev environment behind `weir dev`."""
