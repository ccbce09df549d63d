"""`iotnotify deploy-template DIR`: the SAM template and the keys function's code, from the installed
package, so a pip user deploys without a clone; the function's folder holds only what the handler
runs, and serves keys, the page and its files with nothing else on its path."""

import json
import subprocess
import sys
import sysconfig

from iotnotify.cli import main
from iotnotify.deploy import function_files


def test_it_writes_the_template_and_only_the_handlers_files(tmp_path, capsys):
    assert main(["deploy-template", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "sam deploy --guided" in said and "Is this okay?" in said
    template = (tmp_path / "out" / "template.yaml").read_text()
    assert "CodeUri: function/" in template
    files = sorted(str(p.relative_to(tmp_path / "out" / "function")) for p in (tmp_path / "out" / "function").rglob("*")
                   if p.is_file())
    assert files == sorted(str(p) for p in function_files())
    assert "iotnotify/cli/__init__.py" not in files and "iotnotify/local/stack.py" not in files
    assert "iotnotify/web/static/mqtt.min.js" in files and "iotnotify/server/handler.py" in files
    assert len(files) < 25  # not the package's 95


def test_it_writes_again_over_its_own_but_not_into_a_folder_of_other_files(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["deploy-template", str(out)]) == 0
    (out / "samconfig.toml").write_text("version = 0.1\n")  # sam deploy --guided's answers
    (out / "function" / "requirements.txt").write_text("")  # a file of the user's beside ours
    (out / "function" / "iotnotify" / "gone.py").write_text("")  # a module an earlier version wrote
    assert main(["deploy-template", str(out)]) == 0
    assert (out / "samconfig.toml").exists() and (out / "function" / "requirements.txt").exists()
    assert not (out / "function" / "iotnotify" / "gone.py").exists()
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "main.py").write_text("")
    assert main(["deploy-template", str(tmp_path / "project")]) == 2
    assert "holds other files (main.py)" in capsys.readouterr().err
    assert not (tmp_path / "project" / "template.yaml").exists()


def test_it_never_replaces_a_template_of_someone_elses(tmp_path, capsys):
    """A SAM app of the user's own: its template.yaml is not ours to overwrite."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "template.yaml").write_text("# mine\n")
    assert main(["deploy-template", str(tmp_path / "app")]) == 2
    assert "template.yaml, not this command's" in capsys.readouterr().err
    assert (tmp_path / "app" / "template.yaml").read_text() == "# mine\n"


def test_it_warns_of_an_earlier_sam_build_that_sam_deploy_would_use(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["deploy-template", str(out)]) == 0
    (out / ".aws-sam" / "build").mkdir(parents=True)
    (out / ".aws-sam" / "build" / "template.yaml").write_text("")
    assert main(["deploy-template", str(out)]) == 0
    assert "holds an earlier `sam build`" in capsys.readouterr().err


SERVE = """
import json, sys
sys.path[:0] = [FUNCTION]
sys.path.append(SITE)
import boto3
from moto import mock_aws
with mock_aws():
    iam = boto3.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}
    role = iam.create_role(RoleName="serverless-notifications", AssumeRolePolicyDocument=json.dumps(trust))
    import os
    os.environ["IOTNOTIFY_ROLE"] = role["Role"]["Arn"]
    from iotnotify.server.handler import handler
    def get(path):
        return handler({"version": "2.0", "rawPath": path, "requestContext": {"http": {"method": "GET", "path": path}}})
    keys, page, script = get("/iot/keys"), get("/"), get("/static/mqtt.min.js")
outside = sorted(name for name, m in sys.modules.items()
                 if name.startswith("iotnotify") and not (getattr(m, "__file__", "") or "").startswith(FUNCTION))
print(json.dumps({"keys": [keys["statusCode"], sorted(json.loads(keys["body"]))], "page": page["statusCode"],
                  "script": script["statusCode"], "outside": outside}))
"""


def test_the_function_folder_alone_serves_keys_and_the_page(tmp_path, monkeypatch):
    assert main(["deploy-template", str(tmp_path / "out")]) == 0
    function = str(tmp_path / "out" / "function")
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
           "PATH": "/usr/bin:/bin"}
    script = SERVE.replace("FUNCTION", repr(function)).replace("SITE", repr(sysconfig.get_paths()["purelib"]))
    # -S: no site-packages .pth (this checkout's src/ is on the path through one), -I: nor PYTHON* variables
    done = subprocess.run([sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["keys"][0] == 200, report
    assert {"iotEndpoint", "region", "accessKey", "secretKey", "sessionToken"} <= set(report["keys"][1])
    assert report["page"] == 200 and report["script"] == 200
    assert report["outside"] == []

