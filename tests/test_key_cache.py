"""The key cache is never trusted blindly: a malformed file is ignored (and replaced by the next
fetch), a file or folder another user could have written is not used, links are not followed."""

import datetime as dt
import json
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotnotify.files import Unsafe, read_private, write_private
from iotnotify.keys import KeyCache, parse_keys
from tests.helpers import Cli, tutorial_keys, user_env

URL = "http://127.0.0.1:9/iot/keys"
EVIL = "evil.example"  # where planted keys would send the client


def good_record(url: str = URL, host: str = "127.0.0.1") -> dict:
    now = dt.datetime.now(dt.UTC)
    keys = {**tutorial_keys(host), "expiration": (now + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return {"endpoint": url, "fetchedAt": now.isoformat(), "keys": keys}


def cache_in(folder, notes=None, uid=None) -> KeyCache:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return KeyCache(folder, notes.append if notes is not None else None, uid)


def plant(cache: KeyCache, data: bytes, mode: int = 0o600) -> None:
    path = cache.path(URL)
    path.write_bytes(data)
    os.chmod(path, mode)


def test_a_good_cache_file_is_used(tmp_path):
    cache = cache_in(tmp_path / "keys")
    plant(cache, json.dumps(good_record()).encode())
    assert cache.load(URL).host == "127.0.0.1"


@pytest.mark.parametrize("content", [b"[]", b'{"fetchedAt": 5}', b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe",
                                     b"", b'{"endpoint": "' + URL.encode() + b'", "fetchedAt": "x", "keys": {}}'])
def test_malformed_cache_files_are_ignored_with_one_note(tmp_path, content):
    notes: list[str] = []
    cache = cache_in(tmp_path / "keys", notes)
    plant(cache, content)
    assert cache.load(URL) is None
    assert cache.load(URL) is None
    assert notes == [f"ignoring a malformed key cache file {cache.path(URL)}"]  # once per process


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=20)
fields = st.sampled_from(["endpoint", "fetchedAt", "keys"])
key_fields = st.sampled_from(["iotEndpoint", "region", "accessKey", "secretKey", "sessionToken", "port",
                              "expiration", "awsRules"])


def loads_or_ignores(tmp_path, data: bytes) -> None:
    cache = cache_in(tmp_path / "keys", [])
    plant(cache, data)
    keys = cache.load(URL)
    assert keys is None or keys.fresh()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_or_json_are_loaded_or_ignored_never_raised(tmp_path, data):
    loads_or_ignores(tmp_path, data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=fields, key_field=key_fields, value=json_values)
def test_a_record_with_any_field_replaced_is_loaded_or_ignored(tmp_path, field, key_field, value):
    """Near-valid records: one field (of the record, or of its keys) replaced by any JSON value."""
    record = good_record()
    if field == "keys":
        record["keys"][key_field] = value
    else:
        record[field] = value
    loads_or_ignores(tmp_path, json.dumps(record).encode())


@pytest.mark.parametrize("unsafe, reason", [
    ("file-mode", "is writable by others (mode 666)"),
    ("folder-mode", "is writable by others (mode 777)"),
    ("file-link", "is a symbolic link"),
    ("folder-link", "is a symbolic link"),
    ("owner", "is not owned by you"),
])
def test_a_cache_someone_else_could_have_written_is_not_used(tmp_path, unsafe, reason):
    notes: list[str] = []
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "keys.json").write_text(json.dumps(good_record(host=EVIL)))
    folder = tmp_path / "keys"
    if unsafe == "folder-link":
        os.symlink(planted, folder)
        cache = KeyCache(folder, notes.append)
        os.rename(planted / "keys.json", cache.path(URL))
    else:
        # "owner": as if the files were another user's (the check compares with this uid)
        cache = cache_in(folder, notes, uid=os.geteuid() + 1 if unsafe == "owner" else None)
        if unsafe == "file-link":
            os.symlink(planted / "keys.json", cache.path(URL))
        else:
            plant(cache, (planted / "keys.json").read_bytes(), 0o666 if unsafe == "file-mode" else 0o600)
        if unsafe == "folder-mode":
            os.chmod(folder, 0o777)
    assert cache.load(URL) is None
    assert len(notes) == 1 and notes[0].startswith("ignoring the key cache: ") and reason in notes[0]


def test_keys_are_not_written_into_a_folder_others_may_write(tmp_path):
    notes: list[str] = []
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    cache = KeyCache(folder, notes.append)
    cache.save(URL, parse_keys(good_record()["keys"]))
    assert os.listdir(folder) == []
    assert notes == [f"not caching keys: folder {folder} is writable by others (mode 777)"]


def test_the_command_ignores_planted_keys_and_replaces_a_broken_file(fake_endpoint, tmp_path):
    """End to end: a broken cache file, then keys planted mode 0666 for another broker: the command
    fetches its own keys each time, says why once, and leaves a good private file."""
    fake_endpoint.answer(body=tutorial_keys("real.example"))
    cli = Cli(user_env(tmp_path))
    cli.run("--endpoint", fake_endpoint.url, "keys")  # creates the folder and the file
    folder = tmp_path / "xdg_cache_home" / "iotnotify" / "keys"
    (path,) = folder.iterdir()
    path.write_text("[]")
    broken = cli.run("--endpoint", fake_endpoint.url, "keys")
    assert broken.returncode == 0, broken.stderr
    assert "real.example:443" in broken.stdout
    assert broken.stderr == f"iotnotify: warning: ignoring a malformed key cache file {path}\n"
    assert json.loads(path.read_text())["keys"]["iotEndpoint"] == "real.example"  # replaced

    path.write_text(json.dumps(good_record(fake_endpoint.url, EVIL)))
    os.chmod(path, 0o666)
    planted = cli.run("--endpoint", fake_endpoint.url, "keys")
    assert planted.returncode == 0 and "real.example:443" in planted.stdout and EVIL not in planted.stdout
    assert "is writable by others (mode 666)" in planted.stderr
    assert fake_endpoint.requests == 3
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # replaced by a private file of our own


def test_read_private_refuses_what_is_not_a_regular_file(tmp_path):
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    os.mkfifo(folder / "fifo", 0o600)
    with pytest.raises(Unsafe, match="is not a regular file"):
        read_private(folder / "fifo")  # and does not block on it
    write_private(folder / "big", b"x" * (2 << 20), strict=True)
    with pytest.raises(Unsafe, match="is larger than"):
        read_private(folder / "big")
