"""VoiceCampaignSummaryTrigger: waits in the triggerer until a window holds enough records.

Used by :class:`~airflow_provider_conpeek.sensors.voice_campaign_summary.VoiceCampaignSummarySensor`
with ``deferrable=True``. Each poll is one ``limit=1`` request
(:meth:`~airflow_provider_conpeek.client.ConpeekClient.has_at_least`), run in a worker
thread so the triggerer's event loop never blocks on the HTTP request or on the client's
retry back-off. The plain client makes no Airflow call there.

The connection is read once, with :meth:`ConpeekHook.aget_conn
<airflow_provider_conpeek.hooks.conpeek.ConpeekHook.aget_conn>`: never the synchronous
``get_connection`` from a plain worker thread, which before Airflow 3.2 corrupts the
triggerer's channel to its supervisor and kills the triggerer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_conpeek.connection import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow_provider_conpeek.client import ConpeekClient

CLASSPATH = "airflow_provider_conpeek.triggers.voice_campaign_summary.VoiceCampaignSummaryTrigger"


class VoiceCampaignSummaryTrigger(BaseTrigger):
    """Fire once at least ``min_records`` records match ``filters``.

    Every argument is JSON-safe, so the trigger serialises as is. ``filters`` is the fully
    rendered filter list, the window's ``gte``/``lt`` date filters included: the trigger does
    no templating and knows nothing of data intervals.

    Events (exactly one, then the trigger ends):

    * ``{"status": "success", "records_at_least": min_records, "conpeek_conn_id": ...}``
    * ``{"status": "error", "message": ..., "error_type": ..., "fatal": bool}`` when the API
      or the connection fails in a way waiting cannot fix (HTTP 400/401/403/404, a bad
      connection, a malformed response). ``fatal`` is true for errors a task retry cannot fix
      either (bad key, bad request, bad configuration). The message never contains the API
      key.

    Transient failures (429, 5xx, timeouts, dropped connections), after the hook's own
    retries, are logged and polling continues; the sensor's ``timeout`` (the deferral
    timeout) bounds the wait.

    :param conpeek_conn_id: the Conpeek connection.
    :param filters: rendered filters in the API's dict form (window filters included).
    :param min_records: how many matching records are enough (positive integer).
    :param poll_interval: seconds between polls.
    :param first_poll_after: seconds to wait before the first poll (the sensor passes its
        ``poke_interval``: it has just poked, so an immediate poll would repeat it).

    .. seealso:: :doc:`/sensor`

    Example::

        VoiceCampaignSummaryTrigger(
            conpeek_conn_id="conpeek_default",
            filters=[
                {"property": "created_date", "operator": "gte", "value": "2026-01-01 00:00:00"},
                {"property": "created_date", "operator": "lt", "value": "2026-01-02 00:00:00"},
            ],
            min_records=1,
            poll_interval=300,
        )
    """

    def __init__(
        self,
        *,
        conpeek_conn_id: str = DEFAULT_CONN_ID,
        filters: list[dict[str, Any]] | None = None,
        min_records: int = 1,
        poll_interval: float = 60.0,
        first_poll_after: float = 0.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.conpeek_conn_id = conpeek_conn_id
        self.filters = filters
        self.min_records = min_records
        self.poll_interval = poll_interval
        self.first_poll_after = first_poll_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and JSON-safe kwargs; ``cls(**kwargs)`` serialises identically."""
        return (
            CLASSPATH,
            {
                "conpeek_conn_id": self.conpeek_conn_id,
                "filters": self.filters,
                "min_records": self.min_records,
                "poll_interval": self.poll_interval,
                "first_poll_after": self.first_poll_after,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until enough records match (success) or a non-transient error (error)."""
        from airflow_provider_conpeek.exceptions import ConpeekTransientError, is_fatal
        from airflow_provider_conpeek.hooks.conpeek import ConpeekHook

        # One retry per poll: the poll interval is the backoff, so a Conpeek outage never
        # holds one of the triggerer's shared worker threads for minutes.
        hook = ConpeekHook(conpeek_conn_id=self.conpeek_conn_id, max_retries=1)
        cancel = threading.Event()  # set when the trigger ends, so a worker stops retrying
        client: ConpeekClient | None = None
        polls = 0
        try:
            if self.first_poll_after > 0:
                await asyncio.sleep(self.first_poll_after)
            while True:
                polls += 1
                try:
                    if client is None:
                        client = await hook.aget_conn()
                    found = await asyncio.to_thread(
                        client.has_at_least, self.filters, self.min_records, cancel=cancel
                    )
                except ConpeekTransientError as exc:
                    self.log.warning(
                        "Conpeek poll %d failed transiently, will poll again in %.1f s: %s",
                        polls,
                        self.poll_interval,
                        _safe_message(client, exc),
                    )
                    found = False
                except Exception as exc:  # every other failure ends the wait with a message
                    message = _safe_message(client, exc)
                    self.log.error("Conpeek poll %d failed: %s", polls, message)
                    yield TriggerEvent(  # type: ignore[no-untyped-call]
                        {
                            "status": "error",
                            "message": message,
                            "error_type": type(exc).__name__,
                            "fatal": is_fatal(exc),
                        }
                    )
                    return
                if found:
                    self.log.info(
                        "At least %d matching record(s) found after %d poll(s).",
                        self.min_records,
                        polls,
                    )
                    yield TriggerEvent(  # type: ignore[no-untyped-call]
                        {
                            "status": "success",
                            "records_at_least": self.min_records,
                            "conpeek_conn_id": self.conpeek_conn_id,
                        }
                    )
                    return
                self.log.info(
                    "Fewer than %d matching record(s) so far (poll %d); next poll in %.1f s.",
                    self.min_records,
                    polls,
                    self.poll_interval,
                )
                await asyncio.sleep(self.poll_interval)
        finally:
            cancel.set()
            if client is not None:
                client.close()


def _safe_message(client: ConpeekClient | None, exc: BaseException) -> str:
    """The exception's message, with the API key removed if it somehow got in."""
    message = str(exc) or type(exc).__name__
    if client is not None and client.settings.api_key:
        message = message.replace(client.settings.api_key, "***")
    return message
