"""What the shell completes beyond commands and flags: profile names for --profile, key names for
--sign, and for topic filters the profile's topic and the topics the cached keys allow (read from disk only: completing
never goes over the network). Each is a click `shell_complete` callback."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click
    from click.shell_completion import CompletionItem


def profile_names(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """--profile: the profiles in the config file."""
    from click.shell_completion import CompletionItem

    from iotnotify.errors import ConfigError
    from iotnotify.settings import config_path, read_config

    try:
        profiles = read_config(config_path()).get("profiles", {})
    except (ConfigError, OSError, ValueError):
        return []
    names = sorted(name for name in profiles if isinstance(name, str) and name.startswith(incomplete))
    return [CompletionItem(name) for name in names]


def topic_names(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Topic filters: the profile's `topic`, and the topics (and private topic) of the cached keys
    for the profile's endpoint."""
    from click.shell_completion import CompletionItem

    from iotnotify.errors import IotNotifyError
    from iotnotify.keys import KeyCache
    from iotnotify.keys.cache import default_cache_folder
    from iotnotify.settings import config_path, load_profile

    root = ctx.find_root()
    try:
        profile = load_profile(root.params.get("profile"), config_path())
    except (IotNotifyError, OSError, ValueError):
        return []
    found: list[str] = [profile["topic"]] if isinstance(profile.get("topic"), str) else []
    endpoint = ctx.params.get("endpoint") or root.params.get("endpoint") or profile.get("endpoint")
    if isinstance(endpoint, str):
        keys = KeyCache(default_cache_folder()).load(endpoint)
        if keys is not None:
            listed = keys.raw.get("topics")
            found += [t for t in listed if isinstance(t, str)] if isinstance(listed, list) else []
            private = keys.raw.get("privateTopic")
            found += [private] if isinstance(private, str) else []
    names = dict.fromkeys(topic.replace("/*", "/#") for topic in found)  # IAM's `PREFIX/*` is MQTT's `PREFIX/#`
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def key_names(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """--sign: the keys `keygen` made (a private key beside its NAME.pub)."""
    from click.shell_completion import CompletionItem

    from iotnotify.signing import key_folder

    try:
        names = sorted(path.name[:-4] for path in key_folder().glob("*.pub"))
    except OSError:
        return []
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]
