"""Renderers: pure functions from a RunReport to text, one module per output format."""
