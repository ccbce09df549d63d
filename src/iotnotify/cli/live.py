"""The live view of `iotnotify tail`: connection state, the newest messages, and traffic counters.

TailState is the model (bounded whatever the traffic); render() draws it with rich.
"""

from __future__ import annotations

import collections
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from rich.console import Group, RenderableType
from rich.highlighter import JSONHighlighter
from rich.table import Table
from rich.text import Text

from iotnotify import limits
from iotnotify.messages import Message
from iotnotify.mqtt.transport import OnState, State
from iotnotify.output import preview
from iotnotify.selection import Selection
from iotnotify.shown import escaped
from iotnotify.words import counted

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from iotnotify.cli.keyboard import LineEditor
    from iotnotify.errors import IotNotifyError
    from iotnotify.keys import KeySource
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.mqtt.session import Session
    from iotnotify.send import Publisher
    from iotnotify.signing import Verifier
    from iotnotify.subscribe import OnRefused

MAX_TOPICS = 10_000  # distinct topics counted one by one; the rest go under "(other topics)"
RATE_WINDOW = 10  # seconds


@dataclass
class Row:
    """One line of the log: a message received, or one this view sent."""

    message: Message
    sent: bool = False


@dataclass
class TailState:
    """What the view shows; memory is bounded by `lines` and MAX_TOPICS."""

    lines: int
    selection: Selection = field(default_factory=Selection)
    verifier: Verifier | None = None  # --verify: only what it takes is shown
    host: str = ""
    protocol: str = "5"
    client_id: str = ""
    expires: dt.datetime | None = None
    state: State = State.CONNECTING
    attempt: int = 0
    reconnects: int = 0
    count: int = 0
    bytes: int = 0
    shown: int = 0
    started: float = field(default_factory=time.monotonic)
    rows: collections.deque[Row] = field(init=False)
    topics: collections.Counter[str] = field(default_factory=collections.Counter)
    _seconds: collections.deque[list[int]] = field(default_factory=collections.deque)
    send_topic: str | None = None
    typing: str = ""
    dropped: str = ""  # why the broker last ended the connection (it was made again)
    busy: bool = False  # messages came at AWS IoT Core's outbound rate: some may have been discarded
    notice: str = ""  # what the broker settled otherwise than asked (a shorter session expiry)
    appended: int = 0  # rows put in the log so far (received or sent): the view changed

    def __post_init__(self) -> None:
        self.rows = collections.deque(maxlen=max(self.lines, 1))

    def matches(self, message: Message) -> bool:
        """Whether --grep (topic or payload), --exclude and --verify let the message into the log
        (--verify's once for each message: a second look would see its id again)."""
        return self.selection.admits(message) and (self.verifier is None or self.verifier.admits(message))

    def add(self, message: Message, sent: bool = False) -> bool:
        """Count a message and, if it matches, put it at the bottom of the log; whether it did."""
        if not sent:
            self.count += 1
            self.bytes += len(message.payload)
            topic = message.topic if message.topic in self.topics or len(self.topics) < MAX_TOPICS else "(other topics)"
            self.topics[topic] += 1
            second = int(time.monotonic())
            if self._seconds and self._seconds[-1][0] == second:
                self._seconds[-1][1] += 1
            else:
                self._seconds.append([second, 1])
                while self._seconds and self._seconds[0][0] <= second - RATE_WINDOW:
                    self._seconds.popleft()
        if sent or self.matches(message):
            self.shown += 0 if sent else 1
            self.appended += 1
            self.rows.append(Row(message, sent))
            return True
        return False

    def rate(self, now: float | None = None) -> float:
        """Messages per second over the last 10 seconds (or since the start, if sooner)."""
        now = time.monotonic() if now is None else now
        recent = sum(n for second, n in self._seconds if second > now - RATE_WINDOW)
        return recent / max(min(now - self.started, RATE_WINDOW), 1.0)

    def note(self, text: str) -> None:
        """What the broker settled otherwise than asked: shown in the footer until the view ends."""
        self.notice = escaped(text)

    def set_state(self, state: State, attempt: int = 0) -> None:
        """Connection state from the client: connecting, connected, reconnecting (attempt n), stopped, failed."""
        if state == State.CONNECTED and self.state == State.RECONNECTING:
            self.reconnects += 1
        self.state, self.attempt = state, attempt

    def summary(self) -> str:
        """The one line left when the view stops."""
        elapsed = time.monotonic() - self.started
        shown = f" ({self.shown} shown)" if self.selection or self.verifier is not None else ""
        refused = f"; {self.verifier.summary()}" if self.verifier is not None and self.verifier.refused else ""
        return (f"tail: {counted(self.count, 'message')}{shown}, {_size(self.bytes)} in {elapsed:.0f} s, "
                f"{self.reconnects} reconnects{refused}")


STATE_STYLES = {State.CONNECTED: "bold green", State.CONNECTING: "yellow", State.RECONNECTING: "bold yellow",
                State.STOPPED: "red", State.FAILED: "bold red"}


def _size(n: int) -> str:
    """Bytes for people, in SI units as rich says them: 512 bytes, 1.5 kB, 3.2 MB."""
    from rich.filesize import decimal

    return decimal(n)


def _header(state: TailState) -> Text:
    label = state.state + (f" (attempt {state.attempt})" if state.state == State.RECONNECTING and state.attempt else "")
    header = Text.assemble(("● ", STATE_STYLES.get(state.state, "")), (label, STATE_STYLES.get(state.state, "")),
                           "  ", (f"wss://{state.host}", "bold"), f"  MQTT {state.protocol}  client {state.client_id}")
    header.no_wrap, header.overflow = True, "ellipsis"  # one line whatever the width
    if state.expires is not None:
        header.append(f"  {_keys_left(state.expires)}", style="dim")
    return header


def _keys_left(expires: dt.datetime) -> str:
    """When the keys expire; once they have, what that means: a connection stays up when its keys
    expire (on AWS IoT Core too), and the next reconnection fetches new ones."""
    seconds = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    if seconds >= 60:
        return f"keys expire in {int(seconds // 60)} min"
    if seconds >= 0:
        return "keys expire in under a minute (the connection stays up; new keys at the next reconnection)"
    return "keys expired (the connection stays up; new keys at the next reconnection)"


def _log(state: TailState, width: int, height: int) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, expand=True)
    table.add_column("time", style="dim", no_wrap=True, width=12)
    table.add_column("topic", style="cyan", no_wrap=True, max_width=max(width // 3, 10))
    table.add_column("payload", no_wrap=True, ratio=1)
    highlight = JSONHighlighter()
    rows = list(state.rows)[-height:] if height > 0 else []
    topic_width = min(max((len(escaped(r.message.topic)) for r in rows), default=0), max(width // 3, 10))
    payload_width = max(width - 12 - topic_width - 4, 10)
    for row in rows:
        when = dt.datetime.fromtimestamp(row.message.time).strftime("%H:%M:%S.%f")[:12]
        text, kind = preview(row.message.payload, payload_width)
        extra = _properties_text(row.message, width, max(payload_width - len(text), payload_width // 2))
        if extra:
            text, kind = preview(row.message.payload, payload_width - len(extra))
        payload = highlight(Text(text)) if kind == "json" else Text(text, style="magenta" if kind == "binary" else "")
        if extra:
            payload.append(extra, style="dim yellow")
        topic = Text(("→ " if row.sent else "") + escaped(row.message.topic), style="bold blue" if row.sent else "cyan")
        table.add_row(when, topic, payload)
    return table


WIDE = 120  # columns from which a message's MQTT 5 properties are shown in full, not as a marker


def _properties_text(message: Message, width: int, room: int) -> str:
    """What the log shows of a message's MQTT 5 properties after its payload, in `room` columns:
    who signed it (--verify: `✓ NAME`), then every property on a wide terminal when they fit, else a
    compact marker (`⚑ 1p application/json`, which a long content type may see cut); "" when none.
    Not iotnotify's own properties (the id, the signature)."""
    signed = f"✓ {escaped(message.signer)[:40]}" if message.signer is not None else ""
    if not message.properties or not message.properties.besides_own():
        return f"  {signed}" if signed else ""
    room -= len(signed) + 1 if signed else 0
    detail = escaped(message.properties.detail()) if width >= WIDE else ""
    text = detail if detail and len(detail) + 4 <= room else escaped(message.properties.marker())
    if len(text) + 4 > room:
        text = text[: max(room - 5, 0)] + "…"
    return f"  {signed + ' ' if signed else ''}⚑ {text}"


def _footer(state: TailState) -> Text:
    top = ", ".join(f"{escaped(topic)} {n}" for topic, n in state.topics.most_common(3))
    footer = Text(f"{counted(state.count, 'message')} · {state.rate():.1f}/s · {_size(state.bytes)} · "
                  f"{state.reconnects} reconnects" + (f" · top: {top}" if top else ""), style="dim")
    if state.selection:
        footer.append(f" · {escaped(state.selection.describe())}: {state.shown} shown", style="dim")
    if state.verifier is not None:
        refused = sum(state.verifier.refused.values())
        footer.append(f" · --verify: {refused} refused", style="yellow" if refused else "dim")
    if state.dropped:
        footer.append(f" · last closed by the broker: {state.dropped}", style="yellow")
    if state.notice:
        footer.append(f" · {state.notice}", style="yellow")
    if state.busy:
        footer.append(f" · at AWS's {limits.OUTBOUND_RATE} messages/s: more may have been discarded", style="yellow")
    footer.no_wrap, footer.overflow = True, "ellipsis"
    return footer


def render(state: TailState, width: int, height: int) -> RenderableType:
    """The whole view for a terminal of `width` x `height`: header, log, footer (and the send line)."""
    parts: list[RenderableType] = [_header(state)]
    log_height = min(state.lines, max(height - 3 - (1 if state.send_topic else 0), 1))
    parts.append(_log(state, width, log_height))
    parts.append(_footer(state))
    if state.send_topic is not None:
        parts.append(Text.assemble((f"send to {state.send_topic}> ", "bold"), state.typing, ("▏", "blink")))
    return Group(*parts)


REFRESH = 0.1  # s between redraws of the live view, at most
IDLE_LOOK = 1.0  # s between looks while nothing is typed: the rate and the keys' expiry move with time


def look(state: TailState, width: int, height: int) -> tuple[object, ...]:
    """What the view shows, in a few values: drawn again only when they change (a view left idle
    all day costs no redraw a second: bench/idle.py)."""
    return (state.count, state.appended, state.state, state.attempt, state.reconnects,
            state.typing, state.dropped, state.notice, state.busy, state.client_id,
            _keys_left(state.expires) if state.expires is not None else None, f"{state.rate():.1f}", width, height,
            sum(state.verifier.refused.values()) if state.verifier is not None else 0)


def run_plain(source: KeySource, options: ConnectOptions, topics: list[str], qos: int, selection: Selection,
              save: BinaryIO | None, out: BinaryIO, on_refused: OnRefused | None,
              on_dropped: OnRefused | None = None, on_busy: Callable[[str], None] | None = None,
              on_notice: Callable[[str], None] | None = None, on_state: OnState | None = None,
              verifier: Verifier | None = None) -> tuple[str, bool]:
    """`tail` when stdout is not a terminal: `subscribe -v` lines (those --grep, --exclude and
    --verify let through) until Ctrl-C; (the summary, whether the reader of `out` went away).
    `on_state` hears the connection's state too (the summary counts the reconnections)."""
    from iotnotify.output import OutputStyle, formatter
    from iotnotify.subscribe import subscribe

    plain, save_line = formatter(OutputStyle(verbose=True)), formatter(OutputStyle(json_lines=True))
    state = TailState(1, selection, verifier)

    def changed(new: State, attempt: int) -> None:
        state.set_state(new, attempt)
        if on_state is not None:
            on_state(new, attempt)

    connection, inbox = subscribe(source, options, topics, qos, on_refused=on_refused, on_dropped=on_dropped,
                                  on_busy=on_busy, on_notice=on_notice, on_state=changed)
    gone = False
    with connection:
        try:
            for message in inbox.messages():
                shown = state.add(message)
                if save is not None:
                    save.write(save_line(message))
                    save.flush()
                if shown:
                    out.write(plain(message))
                    out.flush()
        except BrokenPipeError:
            gone = True
        except KeyboardInterrupt:
            pass  # Ctrl-C is how tail ends
        finally:
            inbox.stop()  # a message waiting for room gives up: the connection can close
    return state.summary(), gone


def run_live(source: KeySource, options: ConnectOptions, topics: list[str], qos: int, lines: int | None,
             selection: Selection, save: BinaryIO | None, send_topic: str | None,
             on_refused: OnRefused | None, verifier: Verifier | None = None) -> str:
    """The live view until Ctrl-C: drawn at most every REFRESH seconds, whatever the traffic; lines
    typed are published to `send_topic`. Returns the summary."""
    import contextlib

    from rich.console import Console
    from rich.live import Live

    from iotnotify.cli.keyboard import LineEditor
    from iotnotify.keys.allowance import check_publish
    from iotnotify.output import OutputStyle, formatter
    from iotnotify.send import Publisher
    from iotnotify.subscribe import subscribe
    from iotnotify.topics import check_topic

    console = Console()
    save_line = formatter(OutputStyle(json_lines=True))
    keys = source.get()
    if send_topic is not None:
        check_topic(send_topic, keys.aws_rules)
        check_publish(keys, send_topic)
    state = TailState(lines or max(console.height - 3, 1), selection, verifier, host=f"{keys.host}:{keys.port}",
                      protocol=options.protocol, expires=keys.expiration, send_topic=send_topic)
    def dropped(error: IotNotifyError) -> None:  # the broker ended the connection: shown, and made again
        state.dropped = escaped(str(error))

    def busy(_text: str) -> None:  # at AWS's outbound rate: shown until the view ends
        state.busy = True

    connection, inbox = subscribe(source, options, topics, qos, on_state=state.set_state, on_refused=on_refused,
                                  on_dropped=dropped, on_busy=busy, on_notice=state.note)
    state.client_id = connection.client_id
    state.set_state(State.CONNECTED)
    editor = LineEditor(lambda text: setattr(state, "typing", text)) if send_topic else None
    publisher = Publisher(connection, send_topic, qos, retain=False, ids=True) if send_topic else None
    with connection:
        try:
            with (editor or contextlib.nullcontext()), Live(console=console, auto_refresh=False,
                                                             redirect_stdout=False) as live:
                draw = Drawing(live, console, lambda: refresh(state, connection, source), save)
                while True:  # typing wants a quick echo; otherwise messages wake it, and a look a second
                    for message in inbox.drain(draw.wait(REFRESH if editor is not None else IDLE_LOOK)):
                        state.add(message)
                        if save is not None:
                            save.write(save_line(message))
                    if publisher is not None and editor is not None:
                        _publish_typed(editor, publisher, state, qos)
                    draw(state)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how tail ends
        finally:
            inbox.stop()
            if save is not None:
                save.flush()
    return state.summary()


class Drawing:
    """Draws the view at most every REFRESH seconds, and only when what it shows changed (`look`);
    `before` brings the state up to date first (the keys' expiry, the client id), and --save's file
    is flushed as often."""

    def __init__(self, live: Live, console: Console, before: Callable[[], None], save: BinaryIO | None) -> None:
        self.live, self.console, self.before, self.save = live, console, before, save
        self.drawn: float = 0.0
        self.shown: tuple[object, ...] | None = None
        self.pending = False  # a call came too soon after a draw: what it had to show is not drawn yet

    def wait(self, idle: float) -> float:
        """How long the loop may wait for messages: until a pending draw is due, else `idle`."""
        return max(REFRESH - (time.monotonic() - self.drawn), 0.0) if self.pending else idle

    def __call__(self, state: TailState) -> None:
        if time.monotonic() - self.drawn < REFRESH:
            self.pending = True  # (drawn at the next call, REFRESH from the last draw: `wait`)
            return
        self.pending = False
        if self.save is not None:
            self.save.flush()
        self.before()
        now = look(state, self.console.width, self.console.height)
        if now != self.shown:
            self.live.update(render(state, self.console.width, self.console.height), refresh=True)
            self.shown = now
        self.drawn = time.monotonic()


def refresh(state: TailState, connection: Session, source: KeySource) -> None:
    """What the header shows that may change while tail runs: the keys' expiry, and the client id
    (another after a reconnection with new keys: Session._renew)."""
    state.expires = source.current.expiration if source.current else state.expires
    state.client_id = connection.client_id


def _publish_typed(editor: LineEditor, publisher: Publisher, state: TailState, qos: int) -> None:
    """Publish the lines typed since the last look; one over the broker's limit is said where it was typed."""
    from iotnotify.errors import UsageError

    while not editor.lines.empty():
        payload = editor.lines.get()
        try:
            publisher.publish(payload)
        except UsageError as e:
            state.typing = f"(not sent: {e})"
            continue
        state.add(Message(publisher.topic, payload, qos), sent=True)
