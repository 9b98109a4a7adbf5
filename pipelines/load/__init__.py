"""Load tests (locust) against a running platform."""
