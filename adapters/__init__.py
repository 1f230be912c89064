"""National single window adapters, chosen per party by name in the configuration.

Adapters depend only on the interfaces the core defines (``gateway.core.handover``: the adapter
protocol, the hand-over, the intake callback, the inbox store) and on the error tree; the
gateway's wiring (``gateway.app``) passes them everything else through their constructors.
Each kind has its own typed options class, parsed and checked once at start.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapters.drop_folder import DropFolderAdapter, DropFolderOptions
from adapters.http_push import HttpPushAdapter, HttpPushOptions
from adapters.pull_inbox import PullInboxAdapter, PullInboxOptions
from adapters.remote_gateway import RemoteGatewayAdapter, RemoteGatewayOptions
from gateway.core.handover import Adapter, InboxStore
from gateway.errors import SettingsError

AdapterOptions = DropFolderOptions | HttpPushOptions | PullInboxOptions | RemoteGatewayOptions

OPTION_PARSERS: dict[str, Callable[[Mapping[str, str]], AdapterOptions]] = {
    "drop-folder": DropFolderOptions.parse,
    "http-push": HttpPushOptions.parse,
    "pull-inbox": PullInboxOptions.parse,
    "remote-gateway": RemoteGatewayOptions.parse,
}


def parse_options(party: str, kind: str, options: Mapping[str, str]) -> AdapterOptions:
    """The checked options of ``party``'s ``kind`` adapter; a ``SettingsError`` names the party."""
    try:
        return OPTION_PARSERS[kind](options)
    except KeyError:
        raise SettingsError(
            [f"parties.{party}.adapter: must be one of {sorted(OPTION_PARSERS)}, got {kind!r}"]
        ) from None
    except SettingsError as exc:
        raise SettingsError([f"parties.{party}.options: {p}" for p in exc.problems]) from None


def build_adapter(options: AdapterOptions, *, inbox: InboxStore) -> Adapter:
    """The adapter the checked ``options`` describe; ``inbox`` is for a pull inbox."""
    if isinstance(options, DropFolderOptions):
        return DropFolderAdapter(options.directory, options.access)
    if isinstance(options, PullInboxOptions):
        return PullInboxAdapter(inbox, lease_seconds=options.lease_seconds)
    if isinstance(options, RemoteGatewayOptions):
        return RemoteGatewayAdapter.from_remote_options(options)
    return HttpPushAdapter.from_checked(options)
