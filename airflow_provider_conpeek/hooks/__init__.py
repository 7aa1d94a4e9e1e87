"""Hooks of the Conpeek provider."""
