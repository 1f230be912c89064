"""National single window adapters, chosen per party by name in the configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapters.drop_folder import DropFolderAdapter
from adapters.http_push import HttpPushAdapter
from adapters.pull_inbox import PullInboxAdapter
from adapters.remote_gateway import RemoteGatewayAdapter
from gateway.core.handover import Adapter

AdapterFactory = Callable[[Mapping[str, str]], Adapter]

ADAPTERS: dict[str, AdapterFactory] = {
    "drop-folder": DropFolderAdapter.from_options,
    "http-push": HttpPushAdapter.from_options,
    "pull-inbox": PullInboxAdapter.from_options,
    "remote-gateway": RemoteGatewayAdapter.from_options,
}


def build_adapter(kind: str, options: Mapping[str, str]) -> Adapter:
    """Build the adapter named ``kind`` from its configuration options."""
    return ADAPTERS[kind](options)
