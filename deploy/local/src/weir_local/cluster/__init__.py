"""The local cluster behind `weir dev`: what runs (plan), who runs it (supervisor), what it
leaves on disk (state)."""
