"""Output for any payload: `subscribe -0` (NUL after each message) and `subscribe --dump DIR` (a
file per message), against the local stack with AWS's rules."""

import json
import os
import signal
import subprocess
import time

import pytest

from iotnotify.dump import Dump, safe_topic
from iotnotify.messages import Message
from tests.helpers import run_in_process, user_env
from tests.test_request_respond import finish

PAYLOADS = [b"two\nlines", b"\xff\x00binary", b""]


def send_all(cli, topic, where=("a", "b/c", "d")):
    for place, payload in zip(where, PAYLOADS, strict=True):
        result = cli.run_bytes("send", f"{topic}/{place}", "-s", input=payload)
        assert result.returncode == 0, result.stderr


def test_null_ends_each_message_with_a_nul_so_xargs_0_takes_payloads_of_any_lines(cli, tmp_path, topic):
    subscriber = cli.subscriber(tmp_path, f"{topic}/#", "-0", "-C", "3")
    send_all(cli, topic)
    out, _ = subscriber.communicate(timeout=30)
    assert (subscriber.returncode, out) == (0, b"two\nlines\0\xff\x00binary\0\0")
    pieces = subprocess.run(["xargs", "-0", "-n1", "printf", "<%s>"], input=b"one\0two\nlines\0", capture_output=True,
                            check=True).stdout
    assert pieces == b"<one><two\nlines>"  # what -0 is for


def test_null_without_a_count_too(cli, tmp_path, topic):
    """(The path where each message is written by the thread that received it.)"""
    subscriber = cli.subscriber(tmp_path, topic, "-0")
    for payload in (b"a\nb", b"c"):
        assert cli.run_bytes("send", topic, "-s", input=payload).returncode == 0
    time.sleep(1)  # (no count to end on: delivered by now on loopback)
    subscriber.send_signal(signal.SIGINT)
    out, _ = subscriber.communicate(timeout=20)
    assert out == b"a\nb\0c\0"


def test_dump_writes_a_file_per_message_and_prints_its_path(cli, tmp_path, topic):
    folder = tmp_path / "inbox"
    subscriber = cli.subscriber(tmp_path, f"{topic}/#", "--dump", str(folder), "--json", "-C", "3")
    send_all(cli, topic)
    code, out, _ = finish(subscriber)
    names = [f"000001-{safe_topic(topic)}_a", f"000002-{safe_topic(topic)}_b_c", f"000003-{safe_topic(topic)}_d"]
    assert (code, out) == (0, "".join(f"{folder / name}\n" for name in names))
    assert [(folder / name).read_bytes() for name in names] == PAYLOADS
    records = [json.loads((folder / f"{name}.json").read_text()) for name in names]
    assert [r["topic"] for r in records] == [f"{topic}/a", f"{topic}/b/c", f"{topic}/d"]
    assert records[1]["encoding"] == "base64"


def test_a_second_run_into_the_same_folder_goes_on_numbering(cli, tmp_path, topic):
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "000041-old").write_bytes(b"kept")
    subscriber = cli.subscriber(tmp_path, topic, "--dump", str(folder), "-0", "-C", "1")
    assert cli.run("send", topic, "new").returncode == 0
    out, _ = subscriber.communicate(timeout=30)
    assert out == os.fsencode(folder / f"000042-{safe_topic(topic)}") + b"\0"
    assert (folder / "000041-old").read_bytes() == b"kept"


@pytest.mark.parametrize("topic, name", [
    ("a/b", "000001-a_b"),
    ("../../etc/passwd", "000001-.._.._etc_passwd"),
    ("..", "000001-.."),
    ("/", "000001-_"),
    ("é x", "000001-___x"),
])
def test_no_topic_makes_a_file_outside_the_folder(tmp_path, topic, name):
    dump = Dump(str(tmp_path / "d"))
    path = dump(Message(topic, b"x")).rstrip(b"\n").decode()
    dump.close()
    assert os.path.dirname(path) == str(tmp_path / "d")
    assert os.listdir(tmp_path) == ["d"] and os.listdir(tmp_path / "d") == [os.path.basename(path)]
    assert os.path.basename(path) == name


def test_a_symlink_in_the_folder_is_not_followed(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    target = tmp_path / "target"
    os.symlink(target, folder / "000001-t")  # planted where the first name would go
    dump = Dump(str(folder))
    dump.number = 0
    path = dump(Message("t", b"x"))
    dump.close()
    assert not target.exists()
    assert path == os.fsencode(folder / "000002-t") + b"\n"


def test_a_long_topic_is_cut_to_fit_a_file_name(tmp_path):
    dump = Dump(str(tmp_path))
    path = dump(Message("t" * 5000, b"x"))
    dump.close()
    assert len(os.path.basename(path.rstrip(b"\n"))) == 7 + 200


@pytest.mark.parametrize("args, error", [
    (["--dump", "{tmp}/file"], ("Invalid value for '--dump': Directory '{tmp}/file' is a file. (see iotnotify "
                               "subscribe --help)")),
    (["--dump", "{tmp}/file/sub"], "--dump {tmp}/file/sub: Not a directory"),
    (["--dump", "{tmp}/d", "-v"], "--dump prints each file's path: not with -v, --format, --pretty or -N"),
    (["-0", "-N"], "-N and -0 cannot be combined"),
])
def test_bad_output_options_are_one_line_and_exit_2(tmp_path, args, error):
    (tmp_path / "file").write_text("")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_in_process(["subscribe", "t", *args], user_env(tmp_path))
    assert (result.returncode, result.stderr) == (2, f"iotnotify: error: {error.replace('{tmp}', str(tmp_path))}\n")
