"""Testing of the Conpeek provider."""
