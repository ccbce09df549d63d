"""`send --records`: a capture (`subscribe --json`, `tail --save`) replays as it was captured, each
record to its own topic, with the delivery accounting of `send`."""

import json
import subprocess

from tests.helpers import IOTNOTIFY, wait_for


def finish(proc, timeout=30):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def without_times(lines: str) -> list[dict]:
    records = [json.loads(line) for line in lines.splitlines()]
    for record in records:
        record.pop("time")
        record.pop("message_expiry", None)  # what is left of it: less at each hop
    return records


def capture(cli, tmp_path, topic) -> str:
    """Three messages on two topics (one binary, one with properties), as `subscribe --json` saw them."""
    sub = cli.subscriber(tmp_path, f"{topic}/#", "-C", "3", "-W", "20", "--json")
    assert cli.run("send", f"{topic}/a", "first").returncode == 0
    assert cli.run_bytes("send", f"{topic}/b", "-s", input=b"\x00\xffbinary").returncode == 0
    assert cli.run("send", f"{topic}/a", '{"n": 3}', "--qos", "0", "--content-type", "application/json",
                   "--user-property", "k=v", "--correlation-data", "hex:00ff").returncode == 0
    code, out, err = finish(sub)
    assert code == 0, err
    return out


def test_a_capture_replays_as_it_was_captured(cli, tmp_path, topic):
    captured = capture(cli, tmp_path, topic)
    (tmp_path / "capture.jsonl").write_text(captured)
    again = cli.subscriber(tmp_path, f"{topic}/#", "-C", "3", "-W", "20", "--json")
    result = cli.run("send", "--records", "-f", str(tmp_path / "capture.jsonl"))
    assert (result.returncode, result.stderr) == (0, "")
    code, replayed, err = finish(again)
    assert code == 0, err
    assert without_times(replayed) == without_times(captured)
    assert [r["topic"] for r in without_times(replayed)] == [f"{topic}/a", f"{topic}/b", f"{topic}/a"]
    assert without_times(replayed)[2]["qos"] == 0


def test_tail_save_replays_from_stdin(cli, tmp_path, topic):
    saved = tmp_path / "saved.jsonl"
    tail = subprocess.Popen([*IOTNOTIFY, "tail", f"{topic}/#", "--save", str(saved)], env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # not a terminal: plain lines
    wait_for(lambda: cli.run("send", f"{topic}/x", "probe").returncode == 0 and saved.exists()
             and saved.read_text().count("\n") >= 1, 20, "tail saving")
    tail.terminate()
    tail.communicate(timeout=20)
    first = saved.read_text().splitlines()[0]
    again = cli.subscriber(tmp_path, f"{topic}/x", "-C", "1", "-W", "20", "-v")
    assert cli.run("send", "--records", input=first + "\n").returncode == 0
    assert finish(again)[1] == f"{topic}/x probe\n"


def test_bad_records_are_reported_by_line_and_skipped_and_failed_keeps_them(cli, tmp_path, topic):
    lines = [json.dumps({"topic": f"{topic}/ok", "payload": "one"}),
             "not json",
             json.dumps({"payload": "no topic: goes to TOPIC"}),
             json.dumps({"topic": "elsewhere/x", "payload": "the keys may not"}),
             json.dumps({"topic": f"{topic}/ok", "payload": "two", "qos": 2}),
             json.dumps({"topic": f"{topic}/ok", "payload": "three", "encoding": "base64"}),
             json.dumps({"topic": f"{topic}/ok", "payload": "four"})]
    sub = cli.subscriber(tmp_path, f"{topic}/#", "-C", "3", "-W", "20", "-v")
    failed = tmp_path / "failed.jsonl"
    result = cli.run("send", f"{topic}/default", "--records", "--failed", str(failed), input="\n".join(lines) + "\n")
    assert result.returncode == 6
    assert result.stderr.splitlines() == [
        "iotnotify: line 2 not sent: not a JSON record: Expecting value",
        "iotnotify: line 4 not sent: not allowed: the keys may not publish to 'elsewhere/x' (the keys allow topics "
        + result.stderr.split("(the keys allow topics ")[1].split(")")[0] + ")",
        "iotnotify: line 5 not sent: field 'qos' is not 0 or 1",
        "iotnotify: line 6 not sent: field 'payload' is not base64",
        f"iotnotify: error: 4 of 7 messages were not delivered (4 refused before sending); saved to {failed}",
    ]
    assert finish(sub)[1] == f"{topic}/ok one\n{topic}/default no topic: goes to TOPIC\n{topic}/ok four\n"
    assert failed.read_text().splitlines() == [lines[1], lines[3], lines[4], lines[5]]  # retry: send --records -f


def test_a_record_without_a_topic_needs_topic(cli, topic):
    result = cli.run("send", "--records", input='{"payload": "x"}\n')
    assert result.returncode == 6
    assert "iotnotify: line 1 not sent: no topic (and no TOPIC given)" in result.stderr


def test_records_and_another_source_are_a_usage_error(cli, topic):
    result = cli.run("send", topic, "--records", "-m", "x")
    assert result.returncode == 2 and "--records reads records from stdin or -f FILE" in result.stderr
    result = cli.run("send", "-m", "x")
    assert result.returncode == 2 and "TOPIC is needed (it is optional only with --records)" in result.stderr


def test_records_with_properties_under_mqtt_3_1_1_are_skipped(cli, topic):
    line = json.dumps({"topic": f"{topic}/a", "payload": "p", "content_type": "text/plain"})
    result = cli.run("send", "--records", "--protocol", "3.1.1", "--timeout", "20", input=line + "\n")
    assert result.returncode == 6
    assert result.stderr.splitlines() == [
        "iotnotify: line 1 not sent: MQTT 3.1.1 has no message properties: use --protocol 5",
        "iotnotify: error: 1 of 1 message was not delivered (1 refused before sending)"]  # not waited for
