"""National single window adapters, chosen per party by name in the configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapters.drop_folder import DropFolderAdapter
from adapters.http_push import HttpPushAdapter
from gateway.core.handover import Adapter

AdapterFactory = Callable[[Mapping[str, str]], Adapter]

ADAPTERS: dict[str, AdapterFactory] = {
    "drop-folder": DropFolderAdapter.from_options,
    "http-push": HttpPushAdapter.from_options,
}


def build_adapter(kind: str, options: Mapping[str, str]) -> Adapter:
    """Build the adapter named ``kind`` from its configuration options."""
    return ADAPTERS[kind](options)
