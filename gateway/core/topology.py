"""Every RabbitMQ name the gateway uses, from one pure function.

exchange  {prefix}.route  (topic)  --{CC}.{doc}-->  queue {prefix}.deliver.{CC}  (quorum)
queue {prefix}.deliver.{CC}  --dead-letter-->  exchange {prefix}.dead  -->  queue {prefix}.dead

A delivery that failed for a temporary reason is published to ``{prefix}.retry`` (a headers
exchange) with ``asw-retry-delay-ms: D``; the queue ``{prefix}.retry.{D}ms`` holds it for D ms
(queue TTL) and then dead-letters it back to ``{prefix}.route`` under its original routing key,
so it returns to the same delivery queue. Queues are named by delay, not step, so changing the
schedule never collides with the arguments of an existing queue.

queue {prefix}.identity (quorum, always empty): its arguments name the journal the queues belong
to; a gateway with another journal is refused at start (``gateway.startup``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.envelope import DocumentType


@dataclass(frozen=True, slots=True)
class Topology:
    """The exchange and queue names of one gateway deployment."""

    prefix: str

    @property
    def route_exchange(self) -> str:
        """Topic exchange every accepted message is published to."""
        return f"{self.prefix}.route"

    @property
    def dead_exchange(self) -> str:
        """Exchange dead letters go to, with their reason in the headers."""
        return f"{self.prefix}.dead"

    @property
    def dead_queue(self) -> str:
        """The parking-lot queue operators inspect and replay from."""
        return f"{self.prefix}.dead"

    @property
    def identity_queue(self) -> str:
        """An empty queue whose arguments record which journal these queues belong to."""
        return f"{self.prefix}.identity"

    @property
    def retry_exchange(self) -> str:
        """Headers exchange that sends a message to the queue of its retry step."""
        return f"{self.prefix}.retry"

    def retry_queue(self, delay_ms: int) -> str:
        """The queue holding messages for a backoff delay of ``delay_ms`` milliseconds."""
        return f"{self.prefix}.retry.{delay_ms}ms"

    def delivery_queue(self, country: str) -> str:
        """The durable queue holding what waits for one receiving party."""
        return f"{self.prefix}.deliver.{country}"

    @staticmethod
    def routing_key(country: str, document_type: DocumentType) -> str:
        """Routing key of a message for ``country`` of ``document_type``."""
        return f"{country}.{document_type.slug}"

    @staticmethod
    def binding_key(country: str) -> str:
        """Binding of a receiver's delivery queue: every document type for that country."""
        return f"{country}.*"
