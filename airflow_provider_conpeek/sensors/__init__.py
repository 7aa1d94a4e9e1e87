"""Sensors of the Conpeek provider."""
