"""The per-endpoint key cache: files of mode 0600 in a folder of mode 0700, trusted only when they
are the user's alone (files.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from iotnotify.errors import KeysError
from iotnotify.keys.model import TemporaryKeys, parse_keys
from iotnotify.times import parse_iso


class KeyCache:
    """Keys saved per endpoint URL in files of mode 0600 in a folder of mode 0700, reused while
    fresh. A file another user could have written is not trusted (files.py), and a malformed one
    is ignored: both are replaced by the next fetch, with one note through `warn`."""

    def __init__(self, folder: Path, warn: Callable[[str], None] | None = None, uid: int | None = None) -> None:
        self.folder = folder
        self.uid = uid  # whose files to trust (default: this process's user)
        self._warn = warn
        self._warned: set[str] = set()

    def path(self, url: str) -> Path:
        """The cache file for one endpoint URL."""
        return self.folder / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".json")

    def note(self, message: str) -> None:
        """Tell the user once why the cache was not used."""
        if self._warn is not None and message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    def load(self, url: str) -> TemporaryKeys | None:
        """The cached keys for `url` if present, trusted, well-formed and fresh; else None."""
        from iotnotify.files import Unsafe, read_private

        path = self.path(url)
        try:
            data = read_private(path, self.uid)
        except Unsafe as e:
            self.note(f"ignoring the key cache: {e}")
            return None
        except OSError:
            return None  # no cached keys (or unreadable: the next fetch replaces them)
        try:
            keys = cached_keys(data, url)
        except (ValueError, TypeError, KeysError, OverflowError, RecursionError):
            self.note(f"ignoring a malformed key cache file {path}")
            return None
        return keys if keys is not None and keys.fresh() else None

    def save(self, url: str, keys: TemporaryKeys) -> None:
        """Save keys for `url`; a cache that cannot be written is not an error."""
        from iotnotify.files import Unsafe, write_private

        record = {"endpoint": url, "fetchedAt": keys.fetched_at.isoformat(), "keys": keys.raw}
        try:
            write_private(self.path(url), json.dumps(record).encode(), strict=True)
        except Unsafe as e:
            self.note(f"not caching keys: {e}")
        except OSError:
            pass


def cached_keys(data: bytes, url: str) -> TemporaryKeys | None:
    """The keys in a cache file's bytes if they were saved for `url` (None if for another URL);
    ValueError, KeysError (or, for deep nesting, RecursionError) if the file is malformed."""
    saved = json.loads(data)
    if not isinstance(saved, dict) or not isinstance(saved.get("keys"), dict) \
            or not isinstance(saved.get("fetchedAt"), str) or not isinstance(saved.get("endpoint"), str):
        raise TypeError("not a key cache record")
    if saved["endpoint"] != url:
        return None
    keys = parse_keys(saved["keys"], parse_iso(saved["fetchedAt"]))
    keys.fresh()  # raises OverflowError for times at the edge of the calendar
    return keys


def default_cache_folder() -> Path:
    """Where keys are cached: the user's cache folder for iotnotify."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("iotnotify", appauthor=False)) / "keys"
