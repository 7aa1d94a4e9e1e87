"""Triggers of the Conpeek provider."""
