"""The SAM template: valid for cfn-lint, pointing at a handler that imports with the Lambda runtime's
modules only, and refusing at deploy time the same topics the handler refuses."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from iotnotify.server.policy import SAFE_TOPIC

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "template.yaml"
TEXT = TEMPLATE.read_text()


def test_cfn_lint_passes():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_handler_imports_with_stdlib_and_boto3_only():
    handler = re.search(r"^\s+Handler: (\S+)$", TEXT, re.MULTILINE).group(1)
    module, function = handler.rsplit(".", 1)
    code = (f"import sys, {module} as m; assert callable(m.{function}); "
            "print(sorted({n.split('.')[0] for n in sys.modules} & {'click','rich','awscrt','awsiot','websockets','tomlkit','platformdirs','cryptography'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=TEMPLATE.parent.parent / "src")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("parameter", ["Topics", "PrivateTopicPrefix"])
@pytest.mark.parametrize("topic", ["/serverless/pubsub", "users", "a/b-c_d.e:f=g@h", "a/*", "a?", "a/#", "+",
                                   "${iot:ClientId}", "a b", "a,b"])
def test_template_refuses_the_topics_the_handler_refuses(parameter, topic):
    block = re.search(rf"^  {parameter}:\n((?:    .*\n)+)", TEXT, re.MULTILINE).group(1)
    pattern = re.search(r'AllowedPattern: "(.*)"', block).group(1)
    accepted_by_template = re.fullmatch(pattern, topic) is not None
    accepted_by_handler = SAFE_TOPIC.fullmatch(topic) is not None
    if topic == "a,b" and parameter == "Topics":
        assert accepted_by_template  # a list of two safe topics
    else:
        assert accepted_by_template == accepted_by_handler
