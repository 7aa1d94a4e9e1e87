"""Operators of the Conpeek provider."""
