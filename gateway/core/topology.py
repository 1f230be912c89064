"""Every RabbitMQ name the gateway uses, from one pure function.

exchange  {prefix}.route  (topic)  --{CC}.{doc}-->  queue {prefix}.deliver.{CC}  (quorum)
queue {prefix}.deliver.{CC}  --dead-letter-->  exchange {prefix}.dead  -->  queue {prefix}.dead
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
