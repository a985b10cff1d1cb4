"""Controllers the local cluster relies on, run inside the API server process.

Each is fed store events synchronously (`on_event`, cheap: it only marks work) and does the
work in its own `run()` task: EndpointSlices from Service selectors, namespace deletion, the
removal of pods whose grace period ran out, and the TTL of Events.
"""
