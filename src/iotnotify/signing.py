"""Signed notifications (MQTT 5): `send --sign NAME` signs each message with an Ed25519 key of the
user's; `subscribe`, `on`, `respond`, `request` and `tail --verify FILE` take only messages signed
by a key FILE trusts, for the topic they came on, recently, once.

Keys are OpenSSH's formats (`cryptography` reads and writes them), so `ssh-keygen -t ed25519`
makes keys `--sign PATH` takes, and FILE is like ssh's authorized_keys: `ssh-ed25519 BASE64 NAME`
a line, NAME being who the verifier says signed (`--json`'s `signed_by`).

A signature is four user properties at the end of the message's: its `iotnotify-id`, then
`iotnotify-time` (when it was signed, Unix milliseconds), `iotnotify-key` (the key's SHA256
fingerprint, as `ssh-keygen -l` prints it) and `iotnotify-sig` (base64). What is signed, each
field length-prefixed: the topic, the payload, every user property before the signature's own (so
the id, the time and the key too), the content type, response topic, correlation data and payload
format. Not the QoS, the retain flag nor the message expiry, which brokers may change in transit.

What a verifier refuses, each counted: no signature, a key it does not trust, a signature that
does not match (forged, or altered: another topic, payload or property), a time more than the
window from its clock (a replay of an old message, or a clock far off), an id it took within the
window (a replay, or QoS 1 delivering again). Memory is bounded: ids as Dedupe keeps them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from iotnotify import limits
from iotnotify.errors import UsageError
from iotnotify.properties import (
    MESSAGE_ID,
    SIGNATURE,
    SIGNED_AT,
    SIGNING_KEY,
    Properties,
    message_id,
    user_properties_size,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from iotnotify.messages import Message

KEY = SIGNING_KEY
SIGNATURE_PROPERTIES = (SIGNED_AT, KEY, SIGNATURE)  # what signing adds besides the id (a re-signed message drops the old ones)
DOMAIN = b"iotnotify-signature-1"  # what a notification's signature covers begins with this...
REPLY_DOMAIN = b"iotnotify-reply-1"  # ...and a reply's (respond --sign) with this: one never passes for the other
REPLY_TO = "iotnotify-reply-to"  # a signed reply's: the digest of the request it answers (request_digest)
REQUEST_DOMAIN = b"iotnotify-request-1"  # what that digest covers begins with this
MAX_IDS = 100_000  # ids a verifier remembers for their window; past it, it refuses ("busy") rather than forget
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
KEY_TYPE = "ssh-ed25519"
WINDOW = 300.0  # s: --verify-window's default, either way from the verifier's clock
MAX_TRUSTED = 10_000  # keys in a --verify file
MAX_TRUSTED_BYTES = 4 * 1024 * 1024

REASONS = {"unsigned": "not signed", "unknown": "signed by a key not trusted", "forged": "signature not valid "
           "(forged, or altered: topic, payload or properties)", "stale": "signed outside the time window",
           "repeated": "an id already taken (a replay, or delivered again)",
           "busy": f"over {MAX_IDS:,} signed messages within the window (a replay could not be told)"}


def key_folder() -> Path:
    """Where `keygen` writes keys and `--sign NAME` finds them: `keys` in the user's config folder."""
    import platformdirs

    return Path(platformdirs.user_config_dir("iotnotify", appauthor=False)) / "keys"


def check_key_name(name: str) -> str:
    """A key's NAME: letters, digits, `.`, `_`, `-` (64 at most, not starting with `.`/`-`)."""
    if not KEY_NAME.fullmatch(name):
        raise UsageError(f"key name {name[:80]!r}: use letters, digits, '.', '_' and '-' (at most 64, starting "
                         "with a letter or digit)")
    return name


def fingerprint(public: Ed25519PublicKey) -> str:
    """`SHA256:...`, as `ssh-keygen -l` prints the key's."""
    from cryptography.hazmat.primitives import serialization

    blob = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).split()[1]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def public_line(public: Ed25519PublicKey, name: str) -> str:
    """The key's line for a --verify file: `ssh-ed25519 BASE64 NAME`."""
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + \
        " " + name


def generate(name: str, folder: Path | None = None, force: bool = False) -> tuple[Path, str]:
    """A new key pair NAME in `folder` (default: key_folder()): the private key 0600 (OpenSSH's
    format), NAME.pub beside it; (the private key's path, the public line). UsageError if NAME
    exists (unless `force`)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from iotnotify.files import Unsafe, write_private

    check_key_name(name)
    folder = folder or key_folder()
    path = folder / name
    if not force and (path.exists() or path.is_symlink()):
        raise UsageError(f"key {name} exists ({path}): give another name, or --force to replace it")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    line = public_line(key.public_key(), name)
    try:
        write_private(path, pem, strict=True)
        write_private(folder / f"{name}.pub", (line + "\n").encode(), strict=True)
    except Unsafe as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"cannot write key {name} in {folder}: {e.strerror}") from None
    return path, line


def load_signer(name_or_path: str) -> Signer:
    """--sign NAME (a key `keygen` made) or PATH (an OpenSSH Ed25519 private key without a
    passphrase, such as `ssh-keygen -t ed25519 -N ''` writes); UsageError naming what is wrong."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(name_or_path) if "/" in name_or_path else key_folder() / check_key_name(name_or_path)
    try:
        with path.open("rb") as f:
            data = f.read(64 * 1024)
    except FileNotFoundError:
        hint = "" if "/" in name_or_path else f" (make it with: iotnotify keygen {name_or_path})"
        raise UsageError(f"--sign: no key {path}{hint}") from None
    except OSError as e:
        raise UsageError(f"--sign: cannot read {path}: {e.strerror}") from None
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except TypeError:
        raise UsageError(f"--sign: {path} has a passphrase, which iotnotify cannot ask for") from None
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise UsageError(f"--sign: {path} is not an OpenSSH private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"--sign: {path} is not an Ed25519 key (make one with iotnotify keygen NAME)")
    return Signer(key)


class Signer:
    """Signs messages with one private key (`sign`)."""

    def __init__(self, key: Ed25519PrivateKey, clock: Callable[[], float] = time.time) -> None:
        self.key, self.clock = key, clock
        self.fingerprint = fingerprint(key.public_key())

    def sign(self, topic: str, payload: bytes, properties: Properties | None, aws: bool = False,
             reply_to: str | None = None) -> Properties:
        """`properties` with the signature's user properties at the end (an earlier signature's
        dropped; an `iotnotify-id` added if there is none). A reply (`reply_to`: the request's
        request_digest) is signed as one, for that request alone. UsageError if (`aws`) they take the user
        properties past AWS IoT Core's limit."""
        kept = tuple(pair for pair in (properties.user_properties if properties else ())
                     if pair[0] not in SIGNATURE_PROPERTIES and pair[0] != REPLY_TO)
        base = replace(properties, user_properties=kept) if properties else Properties()
        if message_id(base) is None:
            base = replace(base, user_properties=(*kept, (MESSAGE_ID, os.urandom(16).hex())))
        own = ((REPLY_TO, reply_to),) if reply_to is not None else ()
        signed = replace(base, user_properties=(*base.user_properties, *own,
                                                (SIGNED_AT, str(int(self.clock() * 1000))), (KEY, self.fingerprint)))
        if aws and user_properties_size(signed) + len(SIGNATURE) + 88 > limits.MAX_USER_PROPERTIES_BYTES:
            raise UsageError("--sign: with the signature, the user properties would be over AWS IoT Core's "
                             f"{limits.MAX_USER_PROPERTIES_BYTES} bytes")
        signature = self.key.sign(signed_bytes(topic, payload, signed, REPLY_DOMAIN if reply_to is not None else DOMAIN))
        return replace(signed, user_properties=(*signed.user_properties,
                                                (SIGNATURE, base64.b64encode(signature).decode("ascii"))))


def signed_bytes(topic: str, payload: bytes, properties: Properties, domain: bytes = DOMAIN) -> bytes:
    """What a signature covers (the module's docstring), each field length-prefixed so that no two
    messages give the same bytes; the user properties but the last when it is the signature. A
    payload format of `bytes` is MQTT's default, which a broker may leave out: signed as absent."""
    def text(value: str) -> bytes:
        return value.encode("utf-8", "surrogateescape")

    def optional(value: bytes | None) -> bytes:
        return b"\x00" if value is None else b"\x01" + value

    pairs = properties.user_properties
    if pairs and pairs[-1][0] == SIGNATURE:
        pairs = pairs[:-1]
    fields = [domain, text(topic), payload, len(pairs).to_bytes(4, "big")]
    for key, value in pairs:
        fields += [text(key), text(value)]
    utf8 = properties.payload_format == "utf8"
    fields += [optional(None if properties.content_type is None else text(properties.content_type)),
               optional(None if properties.response_topic is None else text(properties.response_topic)),
               optional(properties.correlation_data), optional(b"utf8" if utf8 else None)]
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


def _valid(key: Ed25519PublicKey, signature: str, data: bytes) -> bool:
    """Whether `signature` (base64) is `key`'s over `data`."""
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def request_digest(topic: str, payload: bytes, properties: Properties | None) -> str:
    """What binds a signed reply to its request: a digest of the whole request (topic, payload,
    every property a broker keeps, its own signature too), which the requester computes over what
    it sent and the responder over what it received. Anyone may copy a request's id and correlation
    data into a request of their own; only the very same request gets a reply that passes."""
    data = signed_bytes(topic, payload, properties or Properties(), REQUEST_DOMAIN)
    if properties is not None and properties.user_properties and properties.user_properties[-1][0] == SIGNATURE:
        data += properties.user_properties[-1][1].encode("utf-8", "surrogateescape")  # (signed_bytes leaves it out)
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Trusted:
    """A key a --verify file trusts, and the name it gives it."""

    name: str
    key: Ed25519PublicKey


def read_trusted(path: str | Path) -> dict[str, Trusted]:
    """A --verify FILE: `ssh-ed25519 BASE64 NAME` lines (blank lines and `#` comments skipped; a
    line without NAME is named by its fingerprint), by fingerprint; UsageError naming a bad line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_TRUSTED_BYTES + 1)
    except OSError as e:
        raise UsageError(f"--verify: cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_TRUSTED_BYTES:
        raise UsageError(f"--verify: {path} is over {MAX_TRUSTED_BYTES // (1024 * 1024)} MiB")
    trusted: dict[str, Trusted] = {}
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.decode("utf-8", "replace").strip()
        if not line or line.startswith("#"):
            continue
        words = line.split(maxsplit=2)
        if words[0] != KEY_TYPE or len(words) < 2:
            raise UsageError(f"--verify: {path}, line {number}: not `{KEY_TYPE} BASE64 NAME`")
        try:
            key = serialization.load_ssh_public_key(f"{words[0]} {words[1]}".encode())
        except (ValueError, binascii.Error, UnicodeEncodeError):
            raise UsageError(f"--verify: {path}, line {number}: not a valid {KEY_TYPE} key") from None
        if not isinstance(key, Ed25519PublicKey):  # the type was checked above: not seen
            raise UsageError(f"--verify: {path}, line {number}: not an Ed25519 key")
        found = fingerprint(key)
        trusted[found] = Trusted(words[2].strip() if len(words) > 2 else found, key)
        if len(trusted) > MAX_TRUSTED:
            raise UsageError(f"--verify: {path} has over {MAX_TRUSTED} keys")
    if not trusted:
        raise UsageError(f"--verify: {path} has no {KEY_TYPE} key")
    return trusted


class Verifier:
    """Admits a message only if a trusted key signed it for its topic within `window` seconds of
    now, and its id was not taken within the window (sets the message's `signer`); `on_refused`
    hears of each other (`refused` counts them by reason: REASONS). With `reply_to` (request
    --verify), only replies signed for the request of that id. Each id is remembered until its
    window ends, at most MAX_IDS of them: past that it refuses ("busy") rather than forget one
    whose replay would then pass."""

    def __init__(self, trusted: dict[str, Trusted], window: float = WINDOW,
                 on_refused: Callable[[Message, str], None] | None = None,
                 clock: Callable[[], float] = time.time, reply_to: str | None = None,
                 max_ids: int = MAX_IDS) -> None:
        self.trusted, self.window, self.on_refused, self.clock = trusted, window, on_refused, clock
        self.reply_to, self.max_ids = reply_to, max_ids
        self.refused: Counter[str] = Counter()
        self._ids: dict[bytes, float] = {}  # id digest -> when its signature's window ends (epoch s)
        self._room_at = float("-inf")  # when full: the soonest an id's window ends (no sweep before it)

    def admits(self, message: Message) -> bool:
        reason = self._why_not(message)
        if reason is None:
            return True
        self.refused[reason] += 1
        if self.on_refused is not None:
            self.on_refused(message, reason)
        return False

    def _why_not(self, message: Message) -> str | None:
        signed = self._signature(message)
        if isinstance(signed, str):
            return signed
        trusted, signed_at = signed
        now = self.clock()
        if abs(now - signed_at) > self.window:
            return "stale"
        key = hashlib.blake2b(str(message_id(message.properties)).encode("utf-8", "surrogateescape"),
                              digest_size=16).digest()
        if key in self._ids and self._ids[key] >= now:
            return "repeated"
        if len(self._ids) >= self.max_ids:
            if now < self._room_at:
                return "busy"  # (a sweep would free nothing: one message's cost stays constant)
            self._ids = {k: until for k, until in self._ids.items() if until >= now}
            if len(self._ids) >= self.max_ids:
                self._room_at = min(self._ids.values())
                return "busy"
        self._ids[key] = signed_at + self.window  # past that, the time refuses a replay
        message.signer = trusted.name
        return None

    def _signature(self, message: Message) -> str | tuple[Trusted, float]:
        """Who signed `message`, and when (epoch s), or why it cannot say: "unsigned", "forged",
        "unknown"."""
        properties = message.properties
        if properties is None or not any(key in SIGNATURE_PROPERTIES for key, _ in properties.user_properties):
            return "unsigned"
        found = dict(pair for pair in properties.user_properties if pair[0] in SIGNATURE_PROPERTIES or pair[0] == REPLY_TO)
        signed_at = found.get(SIGNED_AT, "")
        if properties.user_properties[-1][0] != SIGNATURE or \
                sum(key == SIGNATURE for key, _ in properties.user_properties) > 1 or KEY not in found or \
                not (signed_at.isascii() and signed_at.isdigit() and len(signed_at) <= 16) or \
                message_id(properties) is None or found.get(REPLY_TO) != self.reply_to:
            return "forged"  # a signature's parts missing or malformed, properties added after it, another's reply
        trusted = self.trusted.get(found[KEY])
        if trusted is None:
            return "unknown"
        domain = REPLY_DOMAIN if self.reply_to is not None else DOMAIN
        if not _valid(trusted.key, found[SIGNATURE], signed_bytes(message.topic, message.payload, properties, domain)):
            return "forged"
        return trusted, int(signed_at) / 1000

    def summary(self) -> str:
        """What was refused, for the end of a command: `3 messages refused (2 not signed, 1 ...)`."""
        parts = [f"{count} {REASONS[reason]}" for reason, count in self.refused.most_common()]
        total = sum(self.refused.values())
        return f"{total} message{'s' if total != 1 else ''} refused by --verify ({', '.join(parts)})"
