"""One exception hierarchy: each error carries its one-line message and its exit code (ExitStatus,
as httpie's `status.py`). The exit codes are documented in README.md ("Exit codes"); a test keeps
the two in step.

    IotNotifyError                      1  a bug: never raised as such
    +-- UsageError                      2  bad input: a topic, a payload over a limit, conflicting options
    +-- ConfigError                     3  settings that cannot work: no endpoint, a bad profile
    +-- KeysError                       4  the keys endpoint unreachable, or its answer not usable keys
    +-- ConnectError                    5  the broker unreachable, TLS, the connection refused
    |   +-- KeysRefused                    the WebSocket upgrade refused: keys not (or no longer) accepted
    |   +-- TakenOver                      another client connected with the same client id
    +-- DeliveryError                   6  not everything acknowledged, a subscription refused
    +-- ReceiveTimeout                  7  `subscribe -W` ran out of time; `ping`: pings lost
    +-- LocalStackError                 8  `iotnotify local` could not start
    +-- AwsError                        9  an AWS API call failed (setup-role, --aws)
    +-- Refused                        10  the keys' policy does not allow it ("not authorized")
    +-- CommandFailed                  11  `on -C N`: the command failed for some messages
    +-- Interrupted                   130  Ctrl-C or SIGTERM
"""

from __future__ import annotations

import enum

from iotnotify.shown import LINE, shown


class ExitStatus(enum.IntEnum):
    """The exit codes of `iotnotify`."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    CONFIG = 3
    KEYS = 4
    CONNECT = 5
    DELIVERY = 6
    TIMEOUT = 7
    LOCAL = 8
    AWS = 9
    REFUSED = 10
    COMMAND = 11
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM (launch.py turns 130 into it: 128 + 15, as shells report)


class IotNotifyError(Exception):
    """Base class: a failure the user can act on, with a one-line message."""

    exit_code = ExitStatus.INTERNAL


class UsageError(IotNotifyError):
    """Bad input: an invalid topic or filter, a payload over a limit, conflicting options."""

    exit_code = ExitStatus.USAGE


class ConfigError(IotNotifyError):
    """Settings that cannot work: no endpoint, an unknown profile, an unreadable config file."""

    exit_code = ExitStatus.CONFIG


class KeysError(IotNotifyError):
    """The keys endpoint could not be reached or gave an answer that is not usable keys."""

    exit_code = ExitStatus.KEYS


class ConnectError(IotNotifyError):
    """The broker could not be reached, TLS failed, or the broker refused the connection."""

    exit_code = ExitStatus.CONNECT


class KeysRefused(ConnectError):
    """The broker refused the WebSocket upgrade: the keys are not (or no longer) accepted."""


class HttpsUnsupported(ConnectError):
    """The broker answered an HTTPS publish as a server that takes none (not AWS IoT Core's data endpoint)."""


class TakenOver(ConnectError):
    """Another client connected with the same client id, and the broker closed this connection."""


class DeliveryError(IotNotifyError):
    """The broker did not acknowledge everything: unacknowledged messages, refused subscriptions."""

    exit_code = ExitStatus.DELIVERY


class ReceiveTimeout(IotNotifyError):
    """`subscribe -W` ran out of time before the expected messages arrived."""

    exit_code = ExitStatus.TIMEOUT


class CommandFailed(IotNotifyError):
    """`on -C N`: the command failed (exited non-zero, timed out, could not start) for some messages."""

    exit_code = ExitStatus.COMMAND


class LocalStackError(IotNotifyError):
    """`iotnotify local` could not start: Mosquitto missing, a port in use, the broker failing."""

    exit_code = ExitStatus.LOCAL


class Interrupted(IotNotifyError):
    """Ctrl-C or SIGTERM: the command stopped cleanly before finishing."""

    exit_code = ExitStatus.INTERRUPTED


class AwsError(IotNotifyError):
    """An AWS API call failed or was refused (setup-role, --aws mode)."""

    exit_code = ExitStatus.AWS


class Refused(IotNotifyError):
    """The keys' policy does not allow a connect, publish or subscribe (AWS IoT Core's "not authorized")."""

    exit_code = ExitStatus.REFUSED


def one_line(error: IotNotifyError) -> str:
    """What `iotnotify` prints of an error after its name: 'error: ...' (a Ctrl-C's 'interrupted:
    ...' as it is), on one line whatever the message's lines, with what a peer or a server put in it
    escaped (shown.py) and cut."""
    message = shown(" ".join(line.strip() for line in str(error).splitlines() if line.strip()), LINE)
    return message if isinstance(error, Interrupted) else f"error: {message}"
