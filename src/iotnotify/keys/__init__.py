"""Temporary keys, as httpx shapes its transports: `model.py` (TemporaryKeys, parsing) and
`cache.py` are the leaves; `endpoint.py` (a keys endpoint over HTTP) and `aws.py` (local AWS
credentials, boto3) are the sources; `key_source` here picks one from the settings."""

from __future__ import annotations

from collections.abc import Callable

from iotnotify.keys.cache import KeyCache, default_cache_folder
from iotnotify.keys.model import TemporaryKeys, parse_keys
from iotnotify.keys.source import KeySource
from iotnotify.settings import Settings

__all__ = ["KeyCache", "KeySource", "TemporaryKeys", "endpoint_source", "key_source", "parse_keys", "source_for"]


def endpoint_source(url: str, timeout: float, cache: KeyCache | None = None, proxy: str | None = None) -> KeySource:
    """Keys from a keys endpoint URL (through `proxy`, or the environment's, if any)."""
    def fetch() -> TemporaryKeys:
        from iotnotify.keys.endpoint import fetch_keys  # urllib and friends: only when keys must be fetched

        return fetch_keys(url, timeout, proxy=proxy)

    return KeySource(url, fetch, cache)


def key_source(endpoint: str | None, timeout: float, use_cache: bool, aws: bool = False,
               aws_profile: str | None = None, aws_role: str | None = None,
               warn: Callable[[str], None] | None = None, proxy: str | None = None,
               cognito: Settings | None = None) -> KeySource:
    """The KeySource the settings ask for: AWS credentials (--aws), else the keys endpoint; `warn`
    hears why the key cache was not used, if it was not."""
    from iotnotify.errors import ConfigError

    if aws:
        def direct() -> TemporaryKeys:
            from iotnotify.keys.aws import direct_keys  # boto3: only in this mode

            return direct_keys(aws_profile, aws_role)

        role = f", role {aws_role}" if aws_role else ""
        return KeySource(f"AWS credentials (profile {aws_profile or 'default'}{role})", direct)
    if cognito is not None and cognito.cognito_pool:
        return cognito_source(cognito, endpoint_source(endpoint, timeout, KeyCache(default_cache_folder(), warn)
                                                       if use_cache else None, proxy) if endpoint else None,
                              KeyCache(default_cache_folder(), warn) if use_cache else None)
    if not endpoint:
        raise ConfigError("no keys endpoint configured: use --endpoint URL (or IOTNOTIFY_ENDPOINT, or a profile), "
                          "--aws for your AWS credentials, --cognito-pool REGION:ID for an identity pool, "
                          "or start `iotnotify local` and use --profile local")
    return endpoint_source(endpoint, timeout, KeyCache(default_cache_folder(), warn) if use_cache else None, proxy)


def source_for(settings: Settings, warn: Callable[[str], None] | None = None) -> KeySource:
    """The KeySource `settings` ask for; `warn` hears why the key cache was not used, if it was not."""
    return key_source(settings.endpoint, settings.keys_timeout, use_cache=not settings.no_cache, aws=settings.aws,
                      aws_profile=settings.aws_profile, aws_role=settings.aws_role, warn=warn, proxy=settings.proxy,
                      cognito=settings)


def cognito_source(settings: Settings, endpoint: KeySource | None, cache: KeyCache | None) -> KeySource:
    """Keys from the settings' Cognito identity pool; the IoT endpoint from --iot-endpoint, else
    from the keys endpoint's keys (`endpoint`), as Cognito does not say it."""
    from iotnotify.cognito.keys import IdentityCache, cognito_keys, parse_pool
    from iotnotify.errors import ConfigError
    from iotnotify.topics import is_aws_host

    pool = settings.cognito_pool or ""
    parse_pool(pool)  # a bad pool id is refused before anything goes over the network

    def where() -> tuple[str, int, bool]:
        if settings.iot_endpoint:
            host, _, port = settings.iot_endpoint.partition(":")
            if not host or (port and not (port.isascii() and port.isdecimal())):
                raise ConfigError(f"--iot-endpoint {settings.iot_endpoint!r} is not HOST[:PORT]")
            return host, int(port or 443), is_aws_host(host)
        if endpoint is None:
            raise ConfigError("keys from a Cognito pool need the AWS IoT endpoint: use --iot-endpoint HOST "
                              "(aws iot describe-endpoint --endpoint-type iot:Data-ATS), or --endpoint URL")
        keys = endpoint.get()
        return keys.host, keys.port, keys.aws_rules

    def fetch() -> TemporaryKeys:
        # the identity is kept even with --no-cache (which is about keys): a new one each time would
        # pile up identities in the pool
        return cognito_keys(pool, where, dict(settings.logins), settings.cognito_endpoint,
                            IdentityCache(default_cache_folder()), settings.keys_timeout)

    providers = ",".join(sorted(provider for provider, _ in settings.logins))  # another login, another identity
    return KeySource(f"cognito {pool} {settings.cognito_endpoint or ''} {providers}".strip(), fetch, cache)
