"""`respond`: answer each request with what a command prints, for days, whatever the requests.

What anyone who may publish on the filters can send cannot stop it or grow it without bound:
- a reply is checked before it goes (MQTT's rules, the broker's limits, what the keys allow): one
  the broker would refuse ends the connection under AWS IoT Core's rules (0x87), so it is not
  sent, and a warning names the request's topic;
- every property built is bounded: the `error` property holds at most ERROR_TEXT bytes of the
  command's last stderr line, without the characters MQTT forbids (a NUL made awscrt raise);
- output over the broker's payload limit is not kept past it: the reply says so in `error`;
- requests wait in a bounded queue (`--queue`): a QoS 1 request is acknowledged only once
  answered, and the broker, told how many it may have unacknowledged (Receive Maximum), holds the
  rest back; a QoS 0 request beyond the queue is refused with a warning;
- every request ends in a reply or one warning line (`on_answer`, `on_refused`).
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from iotnotify import dispatch
from iotnotify.dedupe import Dedupe
from iotnotify.dispatch import Workers, subscribe_queued
from iotnotify.errors import DeliveryError, IotNotifyError, Refused, UsageError
from iotnotify.inbox import Inbox
from iotnotify.keys import KeySource
from iotnotify.keys.allowance import check_publish
from iotnotify.messages import Message
from iotnotify.mqtt import ConnectOptions, OnState, Session
from iotnotify.properties import Properties
from iotnotify.rpc import child
from iotnotify.selection import screened
from iotnotify.send import publish_one
from iotnotify.shown import shown
from iotnotify.topics import AWS_MAX_PAYLOAD_BYTES, MQTT_MAX_PAYLOAD_BYTES, check_payload, check_topic

if TYPE_CHECKING:
    from iotnotify.signing import Signer, Verifier
from iotnotify.words import counted

ERROR_TEXT = 1024  # bytes of the command's last stderr line in a reply's `error` property
MAX_SUSPECTS = 1000  # requests remembered as having been answered when the broker ended the connection
RECENT = 2.0  # s: a request answered this long before the broker ended the connection is a suspect too


@dataclass(frozen=True)
class Answer:
    """How one request went: its topic, the command's exit code (None: did not finish in time), its
    stderr's last line, why the reply could not be sent (None: it was), and what the reply had to
    say instead of the output (None: the output went)."""

    topic: str
    exit_code: int | None
    stderr: str
    failure: str | None = None
    replaced: str | None = None


OnAnswer = Callable[[Answer], None]
OnRefused = Callable[[Message, str], None]


def error_text(text: str, limit: int = ERROR_TEXT) -> str:
    """`text` as an MQTT string property may hold it: the characters MQTT forbids or brokers refuse
    (NUL, controls, noncharacters) escaped, then cut to `limit` UTF-8 bytes."""
    data = shown(text, limit).encode("utf-8", "replace")[:limit]
    return data.decode("utf-8", "ignore")  # a character cut in two goes


class Responder:
    """Runs `command` for each request handed to it (dispatch.Workers, `parallel` at a time), with
    the payload on stdin, and publishes its stdout to the request's response topic with the
    request's correlation data (and a user property `error` when the command failed); then
    acknowledges the request. With a `signer`, each reply is signed (signing.py); CMD learns who
    signed the request (--verify) from IOTNOTIFY_SIGNED_BY."""

    def __init__(self, connection: Session, command: list[str], parallel: int, command_timeout: float,
                 on_answer: OnAnswer, signer: Signer | None = None) -> None:
        self.connection = connection
        self.signer = signer  # signs each reply (--sign)
        self.command = command
        self.command_timeout = command_timeout
        self.on_answer = on_answer
        self.unanswered = 0  # requests that got no reply (--count exits 6 if any)
        self._counts = threading.Lock()
        self._answering: dict[int, tuple[object, ...]] = {}  # id(message) -> what identifies the request
        self._suspects: dict[tuple[object, ...], None] = {}  # requests being answered when the broker ended it
        self._recent: collections.deque[tuple[float, tuple[object, ...]]] = collections.deque(maxlen=100)
        self.workers = Workers(parallel, self._answer, self._answered, "respond")

    def dropped(self) -> None:
        """The broker ended the connection: the requests being answered are suspects. A reply the
        broker refuses that way (with keys that do not list their topics) is never acknowledged,
        so with a persistent session it would come again, and again, for ever: a suspect that
        comes again is not answered again."""
        with self._counts:
            recent = [key for at, key in self._recent if at >= time.monotonic() - RECENT]  # the DISCONNECT may
            for key in [*self._answering.values(), *recent]:  # come after a QoS 0 reply's publish completed
                self._suspects[key] = None
            while len(self._suspects) > MAX_SUSPECTS:
                del self._suspects[next(iter(self._suspects))]

    def _answer(self, message: Message) -> Answer:
        properties = message.properties or Properties()
        key = (message.topic, properties.response_topic, properties.correlation_data,
               hashlib.sha256(message.payload).digest())
        with self._counts:
            suspect = key in self._suspects
            self._answering[id(message)] = key
        try:
            return Answer(message.topic, None, "", failure="the broker ended the connection while its reply went "
                          "out the last time: not answered again") if suspect else self._run(message)
        except BaseException as e:  # a request never ends in silence
            return Answer(message.topic, None, "", failure=f"internal error: {type(e).__name__}: {e}")
        finally:
            with self._counts:
                self._answering.pop(id(message), None)
                self._recent.append((time.monotonic(), key))

    def _answered(self, answer: Answer) -> None:
        if answer.failure is not None:
            with self._counts:
                self.unanswered += 1
        self.on_answer(answer)

    def _run(self, message: Message) -> Answer:
        properties = message.properties or Properties()
        response_topic = properties.response_topic or ""
        try:
            self._check_reply_topic(response_topic)
        except (UsageError, Refused) as e:  # before running anything: the reply could not go
            return Answer(message.topic, None, "", failure=str(e))
        limit = AWS_MAX_PAYLOAD_BYTES if self.connection.aws else MQTT_MAX_PAYLOAD_BYTES
        env = {k: v for k, v in os.environ.items() if k != "IOTNOTIFY_SIGNED_BY"}  # a stale one would pass for it
        env["IOTNOTIFY_REQUEST_TOPIC"] = message.topic
        if message.signer is not None:
            env["IOTNOTIFY_SIGNED_BY"] = message.signer
        try:
            outcome = child.run(self.command, message.payload, env, self.command_timeout, limit)
            code, output, errors = outcome.code, outcome.output, outcome.stderr.decode("utf-8", "replace").strip()
        except (OSError, ValueError) as e:
            outcome, code, output = None, 127, b""
            errors = f"cannot run {self.command[0]}: {getattr(e, 'strerror', None) or e}"
        if code is None:
            errors = f"did not finish within {self.command_timeout:g} s"
        last = errors.splitlines()[-1] if errors else ""
        error = None if code == 0 else (f"exit {code}" if code is not None else "timeout") + (f": {last}" if last else "")
        replaced = None
        if outcome is not None and outcome.output_size > limit:
            replaced = f"its output of {outcome.output_size} bytes is over the broker's limit of {limit}"
            output, error = b"", (error + "; " if error else "") + f"iotnotify: {replaced}"
        reply = Properties(user_properties=(("error", error_text(error)),) if error is not None else (),
                           correlation_data=properties.correlation_data)
        try:
            check_payload(len(output), self.connection.aws)
            if self.signer is not None:  # a reply's signature, for this very request alone
                from iotnotify.signing import request_digest

                reply = self.signer.sign(response_topic, output, reply, self.connection.aws,
                                         reply_to=request_digest(message.topic, message.payload, message.properties))
            publish_one(self.connection, response_topic, output, message.qos, reply)
        except (UsageError, Refused, DeliveryError) as e:
            return Answer(message.topic, code, last, failure=str(e))
        return Answer(message.topic, code, last, replaced=replaced)

    def _check_reply_topic(self, topic: str) -> None:
        """What the broker would refuse of a reply to `topic`: MQTT's rules, its limits, the keys."""
        check_topic(topic, self.connection.aws)
        check_publish(self.connection.keys, topic)


def listen(source: KeySource, options: ConnectOptions, filters: list[str], qos: int, command: list[str],
           parallel: int, queue: int, command_timeout: float, on_answer: OnAnswer, on_refused: OnRefused,
           on_dropped: Callable[[IotNotifyError], None], on_state: OnState | None = None,
           on_partial: Callable[[IotNotifyError], None] | None = None,
           on_busy: Callable[[str], None] | None = None,
           on_notice: Callable[[str], None] | None = None,
           signer: Signer | None = None) -> tuple[Session, Inbox, Responder]:
    """Subscribe to `filters` as a responder that runs for days (dispatch.subscribe_queued): a
    connection the broker ends is made again (`on_dropped` hears why, and the requests being
    answered become suspects). Serve the requests with serve(); `on_partial`: as subscribe's
    on_refused (--partial); `on_busy`: as subscribe's (requests at AWS IoT Core's outbound rate),
    and `on_notice`; `signer` signs the replies (--sign)."""
    responders: list[Responder] = []

    def dropped(error: IotNotifyError) -> None:
        on_dropped(error)
        for responder in responders:
            responder.dropped()

    connection, inbox = subscribe_queued(source, options, filters, qos, parallel, queue, on_refused, "requests",
                                         on_state=on_state, on_refused=on_partial, on_dropped=dropped,
                                         on_busy=on_busy, on_notice=on_notice)
    responders.append(Responder(connection, command, parallel, command_timeout, on_answer, signer))
    return connection, inbox, responders[0]


def serve(inbox: Inbox, responder: Responder, count: int | None, on_refused: OnRefused,
          dedupe: Dedupe | None = None, verifier: Verifier | None = None) -> int:
    """Hand the requests in `inbox` to `responder`, each when a slot is free (a message with no
    response topic cannot be answered: `on_refused` hears of it; one `verifier` or `dedupe`
    drops is acknowledged and dropped), until `count` were handed over; how many were."""
    return dispatch.serve(screened(inbox.messages(), dedupe=dedupe, verifier=verifier), responder.workers, count,
                          on_refused,
                          _unanswerable)


def _unanswerable(message: Message) -> str | None:
    """Why a request cannot be answered, if it cannot."""
    if message.properties is None or not message.properties.response_topic:
        return "it has no response topic"
    return None


def unanswered_error(handled: int, responder: Responder) -> IotNotifyError | None:
    """With --count: DeliveryError if some of the requests handed over got no reply."""
    if not responder.unanswered:
        return None
    return DeliveryError(f"{responder.unanswered} of {counted(handled, 'request')} got no reply (see the warnings above)")
