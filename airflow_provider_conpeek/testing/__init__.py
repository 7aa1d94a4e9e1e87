"""Testing of the Conpeek provider: a local fake of the Conpeek API (the "sandbox").

* :mod:`.sandbox` -- :class:`~.sandbox.SandboxServer`, and :class:`~.faults.FaultConfig`
  and :class:`~.faults.FaultRule` re-exported.
* :mod:`.faults` -- which requests a fault hits and what it does to them.
* :mod:`.endpoint` -- checking and answering a request, the request log entry.
* :mod:`.http_server` -- the HTTP/1.1 server, its handler and the admin endpoints.
* :mod:`.tls` -- HTTPS: a self-signed certificate, the handshake and its faults.
* :mod:`.records` -- the records in endpoint order, runtime additions, paged queries.
* :mod:`.generation` -- deterministic, lazily generated records.
* :mod:`.filter_semantics` -- what the ``filter`` parameter accepts and selects.
* :mod:`.dates` -- the API's ``YYYY-MM-DD HH:mm:ss`` date-times.
* :mod:`.pytest_plugin` -- opt-in fixtures ``conpeek_sandbox`` and ``conpeek_sandbox_factory``.
* :mod:`.cli` -- the ``conpeek-sandbox`` command.

Nothing is imported here, so importing the package stays cheap.

.. seealso:: :doc:`/sandbox`: the sandbox from the command line, Python and pytest.
"""
