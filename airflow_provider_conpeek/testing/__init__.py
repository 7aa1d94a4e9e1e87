"""Testing of the Conpeek provider: a local fake of the Conpeek API.

* :mod:`.sandbox` -- :class:`~.sandbox.SandboxServer`, :class:`~.sandbox.FaultConfig`,
  :class:`~.sandbox.FaultRule`.
* :mod:`.records` -- deterministic record generation and filter semantics.
* :mod:`.pytest_plugin` -- fixtures ``conpeek_sandbox`` and ``conpeek_sandbox_factory``.
* :mod:`.cli` -- the ``conpeek-sandbox`` command.

Nothing is imported here, so importing the package stays cheap.
"""
