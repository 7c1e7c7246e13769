"""The demo: a local fleet on an embedded redis-server running small real trainings."""
