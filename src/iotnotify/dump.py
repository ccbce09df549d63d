"""`subscribe --dump DIR`: one file per message, for payloads no line-based script can carry
(several lines, binary), as natscli's `--dump` and MQTTX's `--file-save`.

Each file is named by a sequence number and the topic made safe (`000042-sensors_a_temp`): the
name holds no `/` and never starts with a dot, and is created inside DIR's own descriptor with
O_EXCL and O_NOFOLLOW, so no topic can make it land outside DIR or overwrite a file. Numbering goes
on from the highest number in DIR, so a second run into the same DIR adds to it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from iotnotify.errors import UsageError
from iotnotify.messages import Message
from iotnotify.output import as_record

SAFE = re.compile(rb"[^A-Za-z0-9._-]")
TOPIC_BYTES = 200  # of the topic in a name (a file name holds 255)
NUMBERED = re.compile(r"(\d+)-")
TRIES = 100  # names taken by another writer into the same DIR before giving up


def safe_topic(topic: str) -> str:
    """`topic` as part of a file name: bytes other than A-Z a-z 0-9 . _ - made `_`, cut."""
    return SAFE.sub(b"_", topic.encode("utf-8", "surrogateescape")[:TOPIC_BYTES]).decode("ascii")


class Dump:
    """Writes each message's payload to a file of its own in a folder (and, with `json_sidecar`, its
    JSON record, as `subscribe --json` prints it, beside it as NAME.json); called with a message,
    returns the payload file's path and `end` as the line to print."""

    def __init__(self, folder: str, json_sidecar: bool = False, end: bytes = b"\n") -> None:
        self.folder, self.json_sidecar, self.end = Path(folder), json_sidecar, end
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            names = os.listdir(self._fd)  # noqa: PTH208 - the folder opened, not its path again
        except OSError as e:
            raise UsageError(f"--dump {folder}: {e.strerror}") from None
        if not os.access(self.folder, os.W_OK | os.X_OK):
            os.close(self._fd)
            raise UsageError(f"--dump {folder}: not writable")
        self.number = max((int(m.group(1)) for name in names if (m := NUMBERED.match(name))), default=0)

    def close(self) -> None:
        os.close(self._fd)

    def __call__(self, message: Message) -> bytes:
        name = self._write(message.payload, safe_topic(message.topic))
        if self.json_sidecar:
            record = json.dumps(as_record(message), ensure_ascii=False).encode("utf-8") + b"\n"
            try:
                self._create(f"{name}.json", record)
            except FileExistsError:  # another writer into DIR made it between the two
                raise UsageError(f"--dump: {self.folder / name}.json was made by another writer") from None
        return os.fsencode(self.folder / name) + self.end

    def _write(self, payload: bytes, topic: str) -> str:
        """The payload in a new file, under the next free number; its name."""
        for _ in range(TRIES):
            self.number += 1
            name = f"{self.number:06d}-{topic}"
            try:
                self._create(name, payload)
            except FileExistsError:
                continue  # another writer into DIR took it
            return name
        raise UsageError(f"--dump {self.folder}: {TRIES} names in a row were taken by another writer")

    def _create(self, name: str, data: bytes) -> None:
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666,
                         dir_fd=self._fd)
        except FileExistsError:
            raise
        except OSError as e:
            raise UsageError(f"--dump: cannot write {self.folder / name}: {e.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as e:
            raise UsageError(f"--dump: cannot write {self.folder / name}: {e.strerror}") from None
