"""`on`: run a command for each message, with the payload on its stdin and the message in its
environment: the dispatcher mosquitto's users ask for (eclipse/mosquitto#2711).

What anyone who may publish on the filters can send cannot stop it or grow it without bound:
messages wait in dispatch's bounded queue (a QoS 1 one acknowledged once its command ran), each
command's time is limited (`--command-timeout`: it is stopped with what it started), and a
command that fails or cannot be started is one warning (`on_ran`), never the end. The message
reaches the command as data only: on stdin and in IOTNOTIFY_* variables, never in its arguments.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from iotnotify.dispatch import Workers
from iotnotify.messages import Message
from iotnotify.rpc import child
from iotnotify.times import iso

PREFIX = "IOTNOTIFY_"
USER = PREFIX + "USER_"  # one variable per user property: IOTNOTIFY_USER_<KEY>, the key made a name
NOT_IN_NAME = re.compile(r"[^A-Z0-9_]")
VALUE_BYTES = 64 * 1024  # of one variable (Linux takes at most 128 KiB for one)
MESSAGE_BYTES = 512 * 1024  # of all the message's variables (Linux takes some 2 MiB with the arguments)
VARIABLES = {  # what each variable holds (the docs list them from here)
    "IOTNOTIFY_TOPIC": "the topic",
    "IOTNOTIFY_QOS": "0 or 1",
    "IOTNOTIFY_RETAIN": "true or false",
    "IOTNOTIFY_TIME": "receive time, ISO 8601 UTC with milliseconds",
    "IOTNOTIFY_SIGNED_BY": "with --verify: the name the file gives the key that signed the message",
    "IOTNOTIFY_CONTENT_TYPE": "MQTT 5 content type (each property's variable is set only when the message has it)",
    "IOTNOTIFY_RESPONSE_TOPIC": "MQTT 5 response topic",
    "IOTNOTIFY_CORRELATION_DATA": "MQTT 5 correlation data (base64 when not UTF-8: "
                                  "IOTNOTIFY_CORRELATION_ENCODING is then `base64`)",
    "IOTNOTIFY_MESSAGE_EXPIRY": "MQTT 5 message expiry: seconds left",
    "IOTNOTIFY_PAYLOAD_FORMAT": "MQTT 5 payload format: utf8 or bytes",
    "IOTNOTIFY_USER_PROPERTIES": "MQTT 5 user properties as JSON, [[\"key\", \"value\"], ...]",
    "IOTNOTIFY_USER_<KEY>": "each user property's value, KEY upper-cased with characters other than A-Z, 0-9 "
                            "and _ made _ (`trace-id` -> IOTNOTIFY_USER_TRACE_ID); of several with one name, the last",
    "IOTNOTIFY_TRUNCATED": "1 when the properties were too large for the environment: the IOTNOTIFY_USER_<KEY> "
                           "variables are left out (and IOTNOTIFY_USER_PROPERTIES if it alone is too large); each "
                           "value is cut at 64 KiB",
}


@dataclass(frozen=True)
class Ran:
    """How the command went for one message: its topic, the exit code (None: stopped at
    --command-timeout), and why it could not be started (None: it was)."""

    topic: str
    exit_code: int | None
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def variable_name(key: str) -> str:
    """IOTNOTIFY_USER_<KEY> for user property `key`."""
    return USER + NOT_IN_NAME.sub("_", key.upper())


def env_value(text: str) -> bytes:
    """`text` as an environment variable may hold it: no NUL (a peer's property may carry one), at
    most VALUE_BYTES (Linux refuses a longer one: the command would not start)."""
    return text.replace("\0", "\ufffd").encode("utf-8", "replace")[:VALUE_BYTES]


def environment(message: Message, inherited: dict[str, str]) -> dict[str, str | bytes]:
    """`inherited` (without IOTNOTIFY_* variables that describe a message: a stale one would pass
    for the message's) with the message's IOTNOTIFY_* variables: at most MESSAGE_BYTES of them
    (past that, the user properties' own variables are left out and IOTNOTIFY_TRUNCATED is 1), so
    that no message can keep the command from starting."""
    env: dict[str, str | bytes] = {k: v for k, v in inherited.items() if not _describes_a_message(k)}
    env["IOTNOTIFY_TOPIC"] = env_value(message.topic)
    env["IOTNOTIFY_QOS"] = str(message.qos)
    env["IOTNOTIFY_RETAIN"] = "true" if message.retain else "false"
    env["IOTNOTIFY_TIME"] = iso(message.time, milliseconds=True)
    if message.signer is not None:
        env["IOTNOTIFY_SIGNED_BY"] = env_value(message.signer)
    if not message.properties:
        return env
    record = message.properties.record()
    pairs = record.pop("user_properties", None)
    for name, value in record.items():
        env[PREFIX + name.upper()] = env_value(str(value))
    if not isinstance(pairs, list):
        return env
    budget = MESSAGE_BYTES - sum(len(v) for k, v in env.items() if k.startswith(PREFIX) and isinstance(v, bytes))
    listed = env_value(json.dumps(pairs, ensure_ascii=False))
    own: dict[str, bytes] = {}
    for key, value in pairs:
        name = variable_name(key)
        if name not in VARIABLES:  # a key `properties` does not overwrite IOTNOTIFY_USER_PROPERTIES
            own[name] = env_value(value)
    if len(listed) + sum(len(name) + len(v) for name, v in own.items()) > budget:
        own, env["IOTNOTIFY_TRUNCATED"] = {}, "1"
        if len(listed) >= VALUE_BYTES or len(listed) > budget:
            listed = b""
    env.update(own)
    if listed:
        env["IOTNOTIFY_USER_PROPERTIES"] = listed
    return env


def _describes_a_message(name: str) -> bool:
    return name.startswith(USER) or name in VARIABLES or name in ("IOTNOTIFY_CORRELATION_ENCODING",
                                                                   "IOTNOTIFY_TRUNCATED")


class Runner:
    """Runs `command` for each message handed to it (dispatch.Workers, `parallel` at a time, in
    arrival order when one at a time), and tells `on_ran` how each went."""

    def __init__(self, command: list[str], parallel: int, command_timeout: float,
                 on_ran: Callable[[Ran], None]) -> None:
        self.command, self.command_timeout, self.on_ran = command, command_timeout, on_ran
        self.failed = 0  # messages whose command failed, timed out or could not start (-C exits 11 if any)
        self._count = threading.Lock()
        self._inherited = dict(os.environ)
        self.workers = Workers(parallel, self._run, self._ran, "on")

    def _run(self, message: Message) -> Ran:
        try:
            code = child.run_passing(self.command, message.payload, environment(message, self._inherited),
                                     self.command_timeout)
        except (OSError, ValueError) as e:
            return Ran(message.topic, None, f"cannot run {self.command[0]}: {getattr(e, 'strerror', None) or e}")
        except BaseException as e:  # a message never ends in silence (nor uncounted)
            return Ran(message.topic, None, f"internal error: {type(e).__name__}: {e}")
        return Ran(message.topic, code)

    def _ran(self, ran: Ran) -> None:
        if not ran.ok:
            with self._count:
                self.failed += 1
        self.on_ran(ran)
