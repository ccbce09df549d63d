"""Signed notifications (issue 31, item 1): `keygen`, `send --sign`, and `--verify` on subscribe,
on, respond, request and tail. Each forgery is tried: unsigned, a key not trusted, altered
payload, another topic, a property changed or added, an old signature, a repeated id. The
end-to-end ones run against the local stack with AWS's rules."""

import json
import os
import re
import signal
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from iotnotify.errors import UsageError
from iotnotify.messages import Message
from iotnotify.output import OutputStyle, as_record, formatter
from iotnotify.properties import Properties
from iotnotify.signing import Signer, Verifier, generate, load_signer, public_line, read_trusted
from tests.helpers import run_in_process, user_env, wait_for
from tests.test_on import on
from tests.test_request_respond import finish, responder

LOCKED_KEY = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABDEFuax8U
xyKxNNPPa1Z4cVAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAINHZ6C+R0aVr9f82
+8u7kqlQ+Suws0Asds03/ENztm7DAAAAkAvxqVGs4kW7htORhBKsmKyI6RNrPxbL1xU0BN
gRSHxq4WcKcpunMtVvjE4Wc/UtH2M1awDglmp3T2rSXOYNhoyIWrsuDLMlumq8nFOe4E7d
2Ig1n0p7D8mNKoI7BzWi7NWUcbPuLU+1L07D7J+/5qaoasM5gPxYe6NgDsg9aftBNE0fEZ
SJeh8pFMAAZq2ojQ==
-----END OPENSSH PRIVATE KEY-----
"""  # ssh-keygen -t ed25519 -N secret: a key with a passphrase
NO_BROKER = {"IOTNOTIFY_ENDPOINT": "http://127.0.0.1:9/iot/keys"}  # nothing listens: refusals come first


def keys(folder: Path, *names: str) -> Path:
    """Key pairs NAME in `folder`, and a --verify file trusting them all."""
    trusted = folder / "trusted.keys"
    lines = [generate(name, folder=folder)[1] for name in names]
    trusted.write_text("# who may deploy\n\n" + "\n".join(lines) + "\n")
    return trusted


# --- keygen ---------------------------------------------------------------------------------

def test_keygen_writes_a_pair_only_the_user_reads_and_prints_the_public_line(tmp_path):
    env = user_env(tmp_path)
    done = run_in_process(["keygen", "ci"], env)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\S+ ci\n", done.stdout)
    folder = tmp_path / "xdg_config_home" / "iotnotify" / "keys"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "ci").stat().st_mode) == 0o600
    assert (folder / "ci.pub").read_text() == done.stdout
    assert "private key" in done.stderr and "BEGIN" not in done.stderr + done.stdout
    assert run_in_process(["keygen", "ci", "--public"], env).stdout == done.stdout

    again = run_in_process(["keygen", "ci"], env)
    assert (again.returncode, again.stdout) == (2, "")
    assert "key ci exists" in again.stderr and "--force" in again.stderr
    replaced = run_in_process(["keygen", "ci", "--force"], env)
    assert replaced.returncode == 0 and replaced.stdout != done.stdout
    assert read_trusted(folder / "ci.pub")  # the .pub file is itself a --verify file


@pytest.mark.parametrize("name", ["../x", ".hidden", "a b", "-x", "x" * 65, "é"])
def test_keygen_refuses_a_name_that_is_not_a_plain_file_name(tmp_path, name):
    done = run_in_process(["keygen", "--", name], user_env(tmp_path))
    assert done.returncode == 2 and "key name" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "xdg_config_home" / "iotnotify" / "keys").exists() or \
        not any((tmp_path / "xdg_config_home" / "iotnotify" / "keys").iterdir())


# --- what --sign and --verify refuse before connecting -------------------------------------------

def _private_key_file(path: Path, key: rsa.RSAPrivateKey) -> str:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    return str(path)


def test_sign_with_a_key_that_cannot_sign_is_one_line_and_exit_2(tmp_path):
    env = {**user_env(tmp_path), **NO_BROKER}
    (tmp_path / "locked").write_text(LOCKED_KEY)
    locked = str(tmp_path / "locked")
    other = _private_key_file(tmp_path / "rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    (tmp_path / "junk").write_text("not a key")
    cases = {("--sign", "nokey"): "no key", ("--sign", locked): "passphrase",
             ("--sign", other): "not an Ed25519 key", ("--sign", str(tmp_path / "junk")): "not an OpenSSH private key",
             ("--sign", str(tmp_path / "missing")): "no key"}
    for flags, said in cases.items():
        done = run_in_process(["send", "t/x", "hi", *flags], env)
        assert done.returncode == 2 and said in done.stderr, (flags, done.stderr)
        assert len(done.stderr.splitlines()) == 1
    assert "iotnotify keygen nokey" in run_in_process(["send", "t/x", "hi", "--sign", "nokey"], env).stderr


def test_sign_and_verify_need_mqtt5_and_the_id(tmp_path):
    env = {**user_env(tmp_path), **NO_BROKER}
    key = str(tmp_path / "k")
    trusted = keys(tmp_path, "k")
    cases = {("send", "t/x", "hi", "--sign", key, "--protocol", "3.1.1"): "--sign needs MQTT 5",
             ("send", "t/x", "hi", "--sign", key, "--no-id"): "not with --no-id",
             ("send", "t/x", "hi", "--sign", key, "--via", "https"): "--sign needs MQTT",
             ("send", "t/x", "-l", "--sign", key, "--user-property", "iotnotify-id=1"): "an iotnotify-id of its own",
             ("subscribe", "t/#", "--verify", str(trusted), "--protocol", "3.1.1"): "--verify needs MQTT 5",
             ("on", "t/#", "--verify", str(trusted), "--protocol", "3.1.1", "--", "true"): "--verify needs MQTT 5",
             ("subscribe", "t/#", "--verify-window", "10s"): "goes with --verify",
             ("subscribe", "t/#", "--verify", str(tmp_path / "none")): "cannot read"}
    for args, said in cases.items():
        done = run_in_process(list(args), env)
        assert done.returncode == 2 and said in done.stderr, (args, done.stderr)


@pytest.mark.parametrize("text, said", [
    ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bob\n", "line 1: not `ssh-ed25519 BASE64 NAME`"),
    ("# only a comment\n\n", "has no ssh-ed25519 key"),
    ("ssh-ed25519 !!!notbase64 bob\n", "line 1: not a valid ssh-ed25519 key"),
    ("\nssh-ed25519\n", "line 2: not"),
])
def test_a_verify_file_with_a_bad_line_is_named(tmp_path, text, said):
    (tmp_path / "f").write_text(text)
    with pytest.raises(UsageError, match=re.escape(said)):
        read_trusted(tmp_path / "f")


def test_a_key_line_without_a_name_is_named_by_its_fingerprint(tmp_path):
    line = generate("k", folder=tmp_path)[1]
    (tmp_path / "f").write_text(line.rsplit(" ", 1)[0] + "\n")
    (trusted,) = read_trusted(tmp_path / "f").values()
    assert trusted.name.startswith("SHA256:")


# --- the verifier, forgery by forgery --------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pair(tmp_path):
    keys(tmp_path, "alice")
    clock = Clock()
    signer = load_signer(str(tmp_path / "alice"))
    signer.clock = clock
    refused: list[str] = []
    verifier = Verifier(read_trusted(tmp_path / "trusted.keys"), 60, lambda _m, why: refused.append(why), clock)
    return signer, verifier, clock, refused


def signed(signer: Signer, topic: str = "deploy/web", payload: bytes = b"v42", **props: object) -> Message:
    return Message(topic, payload, 1, properties=signer.sign(topic, payload, Properties(**props) if props else None))


def test_a_message_signed_by_a_trusted_key_passes_with_its_signer(pair):
    signer, verifier, _clock, refused = pair
    message = signed(signer, response_topic="deploy/replies", correlation_data=b"\x00\x01",
                     user_properties=(("env", "prod"),), content_type="text/plain", payload_format="utf8")
    assert verifier.admits(message) and message.signer == "alice" and refused == []
    names = [key for key, _ in message.properties.user_properties]
    assert names == ["env", "iotnotify-id", "iotnotify-time", "iotnotify-key", "iotnotify-sig"]
    assert as_record(message)["signed_by"] == "alice"
    assert formatter(OutputStyle(template="{signed_by}: {payload}"))(message) == b"alice: v42\n"


def _with(message: Message, **changes: object) -> Message:
    return Message(**{"topic": message.topic, "payload": message.payload, "qos": message.qos,
                      "properties": message.properties, **changes})


def _props(message: Message, **changes: object) -> Properties:
    return replace(message.properties, **changes)


FORGERIES = {
    "unsigned": lambda m, _s: _with(m, properties=None),
    "unsigned, other properties": lambda m, _s: _with(m, properties=Properties(user_properties=(("a", "b"),))),
    "payload altered": lambda m, _s: _with(m, payload=b"v43"),
    "another topic": lambda m, _s: _with(m, topic="deploy/db"),
    "response topic changed": lambda m, _s: _with(m, properties=_props(m, response_topic="evil/replies")),
    "correlation data changed": lambda m, _s: _with(m, properties=_props(m, correlation_data=b"x")),
    "content type added": lambda m, _s: _with(m, properties=_props(m, content_type="text/html")),
    "property added after the signature": lambda m, _s: _with(m, properties=_props(
        m, user_properties=(*m.properties.user_properties, ("IOTNOTIFY_X", "1")))),
    "property added before the signature": lambda m, _s: _with(m, properties=_props(
        m, user_properties=(("admin", "yes"), *m.properties.user_properties))),
    "id changed": lambda m, _s: _with(m, properties=_props(m, user_properties=tuple(
        (k, "0" * 32 if k == "iotnotify-id" else v) for k, v in m.properties.user_properties))),
    "time changed": lambda m, _s: _with(m, properties=_props(m, user_properties=tuple(
        (k, str(int(v) + 1) if k == "iotnotify-time" else v) for k, v in m.properties.user_properties))),
    "signature not base64": lambda m, _s: _with(m, properties=_props(m, user_properties=(
        *m.properties.user_properties[:-1], ("iotnotify-sig", "???")))),
    "signature missing": lambda m, _s: _with(m, properties=_props(m, user_properties=m.properties.user_properties[:-1])),
    "a second signature": lambda m, _s: _with(m, properties=_props(m, user_properties=(
        *m.properties.user_properties, m.properties.user_properties[-1]))),
}
EXPECTED = {"unsigned": "unsigned", "unsigned, other properties": "unsigned"}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_each_forgery_is_refused_and_counted(pair, forgery):
    signer, verifier, _clock, refused = pair
    message = FORGERIES[forgery](signed(signer, response_topic="deploy/replies", correlation_data=b"c"), signer)
    assert not verifier.admits(message) and message.signer is None
    assert refused == [EXPECTED.get(forgery, "forged")]
    assert verifier.summary().startswith("1 message refused by --verify")


def test_a_key_not_trusted_is_refused_even_claiming_a_trusted_fingerprint(pair, tmp_path):
    _signer, verifier, clock, refused = pair
    mallory = Signer(ed25519.Ed25519PrivateKey.generate(), clock)
    assert not verifier.admits(signed(mallory))
    mallory.fingerprint = next(iter(verifier.trusted))  # claims to be alice
    assert not verifier.admits(signed(mallory))
    assert refused == ["unknown", "forged"]


def test_replays_are_refused_by_id_within_the_window_and_by_time_after_it(pair):
    signer, verifier, clock, refused = pair
    message = signed(signer)
    assert verifier.admits(message)
    assert not verifier.admits(_with(message))  # the same again: a replay, or QoS 1 delivering twice
    clock.now += 61  # past the 60-s window: its time says it
    assert not verifier.admits(_with(message))
    assert refused == ["repeated", "stale"]


def test_a_signature_from_beyond_the_window_either_way_is_stale(pair):
    signer, verifier, clock, refused = pair
    message = signed(signer)  # signed at T
    clock.now -= 61  # the verifier's clock 61 s behind: signed in its future, beyond the window
    assert not verifier.admits(message)
    clock.now += 61 + 59  # 59 s after T: within the window (a refused message's id is not kept)
    assert verifier.admits(_with(message))
    assert refused == ["stale"]


def test_ids_are_kept_for_their_window_and_past_the_memory_it_refuses_rather_than_forgets(pair):
    signer, roomy, clock, refused = pair
    verifier = Verifier(roomy.trusted, 60, roomy.on_refused, clock, max_ids=3)
    first = signed(signer)
    first_until = clock.now + 60
    assert all(verifier.admits(m) for m in (first, signed(signer, payload=b"2"), signed(signer, payload=b"3")))
    assert not verifier.admits(signed(signer, payload=b"4"))  # full of ids still in their window: busy
    assert not verifier.admits(_with(first))  # and the first is still known: a replay
    assert refused == ["busy", "repeated"]
    assert verifier._room_at == first_until  # while full, no sweep before the soonest window ends
    clock.now += 61  # their windows are over: room again
    assert verifier.admits(signed(signer, payload=b"5"))
    assert "over 100,000 signed messages within the window" in verifier.summary()


def test_a_reply_is_signed_for_its_request_and_never_passes_for_a_notification(pair, tmp_path):
    signer, verifier, clock, refused = pair
    reply_props = signer.sign("jobs/replies", b"done", Properties(correlation_data=b"c"), reply_to="a" * 32)
    reply = Message("jobs/replies", b"done", properties=reply_props)
    assert not verifier.admits(reply)  # a notification's verifier: a reply is not one
    mine = Verifier(verifier.trusted, 60, lambda _m, why: refused.append(why), clock, reply_to="a" * 32)
    theirs = Verifier(verifier.trusted, 60, lambda _m, why: refused.append(why), clock, reply_to="b" * 32)
    assert mine.admits(Message("jobs/replies", b"done", properties=reply_props))
    assert not theirs.admits(Message("jobs/replies", b"done", properties=reply_props))  # another request's
    assert not mine.admits(signed(signer, "jobs/replies", b"done"))  # a notification is no reply
    assert refused == ["forged"] * 3


def test_a_reply_is_bound_to_the_whole_request_not_to_its_copyable_id():
    from iotnotify.signing import request_digest

    asked = Properties(user_properties=(("iotnotify-id", "1" * 32),), response_topic="me/replies",
                       correlation_data=b"c")
    mine = request_digest("jobs/backup", b"db1", asked)
    assert mine == request_digest("jobs/backup", b"db1", asked) and len(mine) == 64
    assert request_digest("jobs/delete", b"db1", asked) != mine  # the id and correlation copied, another topic
    assert request_digest("jobs/backup", b"everything", asked) != mine
    assert request_digest("jobs/backup", b"db1", replace(asked, payload_format="bytes", message_expiry=9)) == mine




def test_a_broker_leaving_out_the_default_payload_format_does_not_break_the_signature(pair):
    signer, verifier, _clock, _refused = pair
    message = signed(signer, payload_format="bytes")
    assert verifier.admits(_with(message, properties=_props(message, payload_format=None)))
    utf8 = signed(signer, payload=b"t", payload_format="utf8")
    assert not verifier.admits(_with(utf8, properties=_props(utf8, payload_format=None)))  # that one counts


def test_refusals_are_said_at_most_once_a_second():
    from iotnotify.cli import terminal

    said: list[str] = []
    clock = Clock()
    original = terminal.note
    terminal.note = lambda text, quiet=False: said.append(text)  # type: ignore[assignment]
    try:
        say = terminal.refusal_notes(clock=clock)
        for _ in range(5):
            say(Message("a/\x1b[31mb", b""), "unsigned")
        clock.now += 1
        say(Message("a/b", b""), "forged")
    finally:
        terminal.note = original
    assert said == ["iotnotify: --verify refused a message on a/\\x1b[31mb: not signed",
                    ("iotnotify: --verify refused a message on a/b: signature not valid (forged, or altered: topic, "
                     "payload or properties) (and 4 more not said)")]


# --- end to end, against the local stack ------------------------------------------------------------

def test_subscribe_verify_takes_only_what_a_trusted_key_signed(cli, tmp_path, topic):
    trusted = keys(tmp_path, "ci")
    stranger = generate("stranger", folder=tmp_path)[0]
    subscriber = cli.subscriber(tmp_path, topic, "--verify", str(trusted), "--json", "-C", "1", "-W", "30")
    assert cli.run("send", topic, "unsigned").returncode == 0
    assert cli.run("send", topic, "from a stranger", "--sign", str(stranger)).returncode == 0
    assert cli.run("send", topic, "forged", "--user-property", "iotnotify-sig=AAAA").returncode == 0
    done = cli.run("send", topic, "v42", "--sign", str(tmp_path / "ci"), "-q", "1")
    assert done.returncode == 0, done.stderr
    code, out, err = finish(subscriber)
    assert code == 0, err
    record = json.loads(out)
    assert (record["payload"], record["signed_by"]) == ("v42", "ci")
    assert err.splitlines()[0] == f"iotnotify: --verify refused a message on {topic}: not signed"
    assert err.splitlines()[-1].startswith("iotnotify: 3 messages refused by --verify (")
    assert all(part in err for part in ("1 not signed", "1 signed by a key not trusted", "1 signature not valid"))


def test_a_replayed_or_retargeted_signed_message_is_refused(cli, tmp_path, topic):
    trusted = keys(tmp_path, "ci")
    capture = cli.subscriber(tmp_path, f"{topic}/#", "--json", "-C", "1")
    verifying = cli.subscriber(tmp_path, f"{topic}/#", "--verify", str(trusted), "-v", "-C", "2", "-W", "40")
    assert cli.run("send", f"{topic}/a", "go", "--sign", str(tmp_path / "ci")).returncode == 0
    record = json.loads(finish(capture)[1])
    record.pop("message_expiry", None)
    replay = json.dumps(record) + "\n"
    assert cli.run("send", "--records", input=replay).returncode == 0  # the same message again: repeated
    assert cli.run("send", "--records", input=json.dumps({**record, "topic": f"{topic}/b"}) + "\n").returncode == 0
    assert cli.run("send", f"{topic}/a", "again", "--sign", str(tmp_path / "ci")).returncode == 0
    code, out, err = finish(verifying)
    assert (code, out) == (0, f"{topic}/a go\n{topic}/a again\n"), err
    summary = err.splitlines()[-1]
    assert summary.startswith("iotnotify: 2 messages refused by --verify (") and "1 an id already taken" in summary \
        and "1 signature not valid" in summary  # (a replay after the window: the unit tests)


def test_send_sign_name_uses_the_key_keygen_made(cli, tmp_path, topic):
    name = "k" + os.urandom(4).hex()  # the stack's users share a config folder
    made = cli.run("keygen", name)
    assert made.returncode == 0, made.stderr
    (tmp_path / "trusted").write_text(made.stdout)
    subscriber = cli.subscriber(tmp_path, topic, "--verify", str(tmp_path / "trusted"), "--format",
                                "{signed_by} {payload}", "-C", "2")
    assert cli.run("send", topic, "-l", "--sign", name, input="one\ntwo\n").returncode == 0
    assert finish(subscriber)[:2] == (0, f"{name} one\n{name} two\n")


def test_on_verify_runs_the_command_only_for_signed_messages_and_names_the_signer(cli, tmp_path, topic):
    trusted = keys(tmp_path, "deployer")
    running = on(cli, tmp_path, topic, "--verify", str(trusted), "-C", "1", "--", "sh", "-c",
                 'printf "%s:%s\\n" "$IOTNOTIFY_SIGNED_BY" "$(cat)"')
    assert cli.run("send", topic, "rm -rf /").returncode == 0
    assert cli.run("send", topic, "v42", "--sign", str(tmp_path / "deployer")).returncode == 0
    code, out, err = finish(running)
    assert (code, out) == (0, "deployer:v42\n"), err
    assert "not signed" in err


def test_request_and_respond_sign_and_verify_both_ways(cli, tmp_path, topic):
    trusted = keys(tmp_path, "ops", "runner")
    answering = responder(cli, tmp_path, topic, "--verify", str(trusted), "--sign", str(tmp_path / "runner"), "--",
                          "sh", "-c", 'echo "for $IOTNOTIFY_SIGNED_BY: $(cat)"')
    unsigned = cli.run("request", topic, "x", "--response-topic", f"{topic}/r1", "-W", "3")
    assert unsigned.returncode == 7  # refused: never answered
    done = cli.run("request", topic, "backup", "--response-topic", f"{topic}/r2", "--sign", str(tmp_path / "ops"),
                   "--verify", str(trusted), "--json", "-W", "20")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert (reply["payload"], reply["signed_by"]) == ("for ops: backup\n", "runner")
    answering.send_signal(signal.SIGINT)
    _code, _out, err = finish(answering)
    assert "--verify refused a message" in err and "not signed" in err


def test_request_verify_refuses_an_unsigned_reply(cli, tmp_path, topic):
    trusted = keys(tmp_path, "runner")
    answering = responder(cli, tmp_path, topic, "--", "cat")
    done = cli.run("request", topic, "x", "--response-topic", f"{topic}/r", "--verify", str(trusted), "-W", "5")
    answering.send_signal(signal.SIGINT)
    finish(answering)
    assert done.returncode == 7 and "1 message refused by --verify (1 not signed)" in done.stderr


def test_tail_verify_shows_only_signed_messages(cli, tmp_path, topic):
    trusted = keys(tmp_path, "ci")
    saved = tmp_path / "traffic.jsonl"
    tail = cli.start("tail", f"{topic}/#", "--verify", str(trusted), "--save", str(saved))
    wait_for(lambda: cli.run("send", f"{topic}/sync", "sync", "--sign", str(tmp_path / "ci")).returncode == 0 and
             saved.exists() and saved.stat().st_size > 0, 30, "tail subscribed")
    assert cli.run("send", f"{topic}/x", "unsigned").returncode == 0
    assert cli.run("send", f"{topic}/x", "signed", "--sign", str(tmp_path / "ci")).returncode == 0
    wait_for(lambda: '"signed"' in saved.read_text(), 20, "saved")
    tail.send_signal(signal.SIGINT)
    out, err = (b.decode() for b in tail.communicate(timeout=30))
    assert [line for line in out.splitlines() if "sync" not in line] == [f"{topic}/x signed"]
    assert "unsigned" in saved.read_text()  # --save keeps everything, as with --grep
    assert err.splitlines()[-1].endswith("refused by --verify (1 not signed)")


def test_tail_shows_the_signer_and_hides_the_signature(pair):
    from iotnotify.cli.live import _properties_text

    signer, verifier, _clock, _refused = pair
    message = signed(signer)
    assert verifier.admits(message)
    assert _properties_text(message, 200, 100) == "  ✓ alice"
    labelled = signed(signer, payload=b"x", content_type="text/plain")
    assert verifier.admits(labelled)
    assert _properties_text(labelled, 200, 100) == "  ✓ alice ⚑ content_type=text/plain"
    unverified = signed(signer, payload=b"y")
    assert _properties_text(unverified, 200, 100) == ""  # the id and signature are not news
    assert public_line(signer.key.public_key(), "x").startswith("ssh-ed25519 ")
