"""One exception hierarchy: each error carries its one-line message and its exit code.

The exit codes are documented in README.md ("Exit codes"); keep the two in step.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_KEYS = 4
EXIT_CONNECT = 5
EXIT_DELIVERY = 6
EXIT_TIMEOUT = 7
EXIT_LOCAL = 8
EXIT_AWS = 9
EXIT_REFUSED = 10
EXIT_INTERRUPTED = 130


class IotNotifyError(Exception):
    """Base class: a failure the user can act on, with a one-line message."""

    exit_code = EXIT_INTERNAL


class UsageError(IotNotifyError):
    """Bad input: an invalid topic or filter, a payload over a limit, conflicting options."""

    exit_code = EXIT_USAGE


class ConfigError(IotNotifyError):
    """Settings that cannot work: no endpoint, an unknown profile, an unreadable config file."""

    exit_code = EXIT_CONFIG


class KeysError(IotNotifyError):
    """The keys endpoint could not be reached or gave an answer that is not usable keys."""

    exit_code = EXIT_KEYS


class ConnectError(IotNotifyError):
    """The broker could not be reached, TLS failed, or the broker refused the connection."""

    exit_code = EXIT_CONNECT


class KeysRefused(ConnectError):
    """The broker refused the WebSocket upgrade: the keys are not (or no longer) accepted."""


class TakenOver(ConnectError):
    """Another client connected with the same client id, and the broker closed this connection."""


class DeliveryError(IotNotifyError):
    """The broker did not acknowledge everything: unacknowledged messages, refused subscriptions."""

    exit_code = EXIT_DELIVERY


class ReceiveTimeout(IotNotifyError):
    """`subscribe -W` ran out of time before the expected messages arrived."""

    exit_code = EXIT_TIMEOUT


class LocalStackError(IotNotifyError):
    """`iotnotify local` could not start: Mosquitto missing, a port in use, the broker failing."""

    exit_code = EXIT_LOCAL


class Interrupted(IotNotifyError):
    """Ctrl-C or SIGTERM: the command stopped cleanly before finishing."""

    exit_code = EXIT_INTERRUPTED


class AwsError(IotNotifyError):
    """An AWS API call failed or was refused (setup-role, --aws mode)."""

    exit_code = EXIT_AWS


class Refused(IotNotifyError):
    """The keys' policy does not allow a connect, publish or subscribe (AWS IoT Core's "not authorized")."""

    exit_code = EXIT_REFUSED
