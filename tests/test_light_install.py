"""The light install: boto3 and botocore come only with the `aws` extra. Without them the commands
that need them (--aws, retained --aws, setup-*) exit 3 with one line naming the extra, and
everything else (send, subscribe, keys from an endpoint, the local stack) works. boto3 is made
absent by a folder first on PYTHONPATH whose boto3 and botocore fail to import as a missing module does."""

import os
from pathlib import Path

import pytest

from tests.helpers import Cli

pytestmark = pytest.mark.mosquitto

MISSING = 'raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n'


def without_boto3(env: dict[str, str], root: Path) -> dict[str, str]:
    """`env` as an install without the `aws` extra would be."""
    for name in ("boto3", "botocore"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(MISSING.format(name=name))
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))}


@pytest.mark.parametrize("args", [
    ("--aws", "keys"),
    ("--aws-profile", "ops", "send", "demo/x", "hi"),
    ("--aws", "retained", "list", "demo/#"),
    ("setup-role", "--dry-run"),
    ("setup-cognito", "--identity", "eu-west-1:11111111-2222-3333-4444-555555555555", "--dry-run"),
])
def test_without_the_aws_extra_what_needs_boto3_exits_3_naming_the_extra(cli, tmp_path, args):
    env = without_boto3(cli.env, tmp_path / "light")
    assert Cli(env).run("--version").returncode == 0  # the shadow folder breaks nothing else
    done = Cli(env).run(*args)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "pip install 'iotnotify[aws]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_boto3_send_and_subscribe_work_through_the_local_stack(cli, tmp_path):
    light = Cli(without_boto3(cli.env, tmp_path / "light"))
    subscriber = light.subscriber(tmp_path, "demo/light", "--count", "1")
    sent = light.run("send", "demo/light", "no boto3 here")
    assert sent.returncode == 0, sent.stderr
    out, err = subscriber.communicate(timeout=30)
    assert subscriber.returncode == 0, err
    assert out.decode().strip() == "no boto3 here"
    keys = light.run("keys")
    assert keys.returncode == 0, keys.stderr
