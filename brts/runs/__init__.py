"""Runs: planning a spec into runs, the run store, and executing runs."""
