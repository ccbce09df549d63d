"""`local`, `setup-role`, `setup-cognito`, `setup-rule`, `deploy-template`: running the local
stack, and the one-off AWS setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from iotnotify.cli.options import CONTEXT
from iotnotify.cli.terminal import note
from iotnotify.local import DEFAULT_KEYS_PORT, DEFAULT_MQTT_PORT, DEFAULT_TOPICS, DEFAULT_WS_PORT, DEFAULT_WSS_PORT
from iotnotify.server.config import DEFAULT_LIFETIME


@click.command("local", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify local                       # then, elsewhere: iotnotify --profile local send demo/hi hello
  iotnotify local --topics 'alerts/*,/serverless/pubsub' --any-client-id
  iotnotify local --role-policy my-role-policy.json      # your role's policy in place of the default
  iotnotify local --permissive          # no policy, limits or throttle (benchmarks, other tools)
  iotnotify local --port 19443 --keys-port 19080 --mqtt-port 19883 --ws-port 19081""")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_WSS_PORT, show_default=True,
              help="Broker port for MQTT over WebSocket with TLS.")
@click.option("--keys-port", type=click.IntRange(1, 65535), default=DEFAULT_KEYS_PORT, show_default=True,
              help="Port of the keys endpoint (HTTP).")
@click.option("--mqtt-port", type=click.IntRange(1, 65535), default=DEFAULT_MQTT_PORT, show_default=True,
              help="Plain MQTT port for other clients (mosquitto_pub/sub).")
@click.option("--ws-port", type=click.IntRange(1, 65535), default=DEFAULT_WS_PORT, show_default=True,
              help="Port of the browser page's MQTT over WebSocket, without TLS (loopback only).")
@click.option("--lifetime", type=click.IntRange(20, 43200), default=DEFAULT_LIFETIME, show_default=True, metavar="S",
              help="Lifetime of the keys the endpoint mints, in seconds (short ones show clients refreshing them; "
                   "AWS's are at least 900).")
@click.option("--topics", default=",".join(DEFAULT_TOPICS), show_default=True, metavar="T1,T2",
              help="Topics the keys may use (PREFIX/* for every topic below PREFIX/), as IOTNOTIFY_TOPICS.")
@click.option("--private-topic-prefix", metavar="PREFIX",
              help="Keys may also subscribe to and receive on PREFIX/<clientId>, as IOTNOTIFY_PRIVATE_TOPIC_PREFIX.")
@click.option("--any-client-id", is_flag=True, help="Keys may connect with any client id, as IOTNOTIFY_ANY_CLIENT_ID.")
@click.option("--role-policy", type=click.File("rb"), metavar="FILE",
              help="The role's policy (JSON) the keys' session policy is intersected with "
                   "(default: the SAM template's role's, IoT only).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="A web page origin (https://app.example:8443) that may get keys and connect, besides the "
                   "stack's own loopback origins; repeat for more, * for any. Default: none.")
@click.option("--permissive", is_flag=True,
              help="Check signatures only: no policy, limits or throttle (for benchmarks and other tools).")
@click.option("--max-connection-duration", type=click.IntRange(1, 86_400), default=86_400, show_default=True,
              metavar="S", help="Close a connection at its first message after S seconds, as AWS IoT Core closes a "
                               "WebSocket connection after 24 hours (shorter: to see clients come back).")
@click.option("--max-session-expiry", type=click.IntRange(1, 7 * 86_400), default=3600, show_default=True,
              metavar="S", help="Keep a persistent session S seconds after its client left, as the account's maximum "
                               "(AWS's default is an hour, raised on request up to 7 days; shorter: to see sessions "
                               "end); an MQTT 5 client asking longer is told S in the CONNACK.")
@click.option("--shared-subscriptions/--no-shared-subscriptions", default=True, show_default=True,
              help="Keys may subscribe to $share/NAME/FILTER, as IOTNOTIFY_SHARED_SUBSCRIPTIONS.")
@click.option("--lifecycle-events", is_flag=True,
              help="Keys may receive the lifecycle events $aws/events/..., as IOTNOTIFY_LIFECYCLE_EVENTS.")
@click.option("--profile-name", default="local", show_default=True, metavar="NAME",
              help="Profile to write to the config file for this stack.")
def local_command(port: int, keys_port: int, mqtt_port: int, ws_port: int, lifetime: int, topics: str, private_topic_prefix: str | None,
          any_client_id: bool, role_policy: Any, cors_origins: tuple[str, ...], permissive: bool,
          max_connection_duration: int, max_session_expiry: int, shared_subscriptions: bool, lifecycle_events: bool,
          profile_name: str) -> None:
    """Run a local stack on loopback until Ctrl-C: Mosquitto behind a TLS WebSocket front that plays by
    AWS IoT Core's rules, and a keys endpoint."""
    import datetime as dt

    from iotnotify.local.stack import (
        LocalStack,
        StackConfig,
        default_state_dir,
        read_role_policy,
        run_until_stopped,
    )
    from iotnotify.settings import save_profile
    from iotnotify.shown import LINE, shown

    def log(line: str) -> None:  # what AWS IoT Core would put in CloudWatch: refusals, throttling
        click.echo(f"{dt.datetime.now().strftime('%H:%M:%S')} {shown(line, LINE)}", err=True)  # clients' topics

    topic_list = tuple(t.strip() for t in topics.split(",") if t.strip())
    policy = read_role_policy(role_policy.read(), getattr(role_policy, "name", "--role-policy")) if role_policy else None
    stack = LocalStack(StackConfig(default_state_dir(), port, keys_port, mqtt_port, lifetime, topic_list, permissive,
                                   any_client_id, private_topic_prefix, policy,
                                   tuple(o.rstrip("/") for o in cors_origins), ws_port, max_connection_duration,
                                   max_session_expiry, shared_subscriptions, lifecycle_events),
                       log=log)
    try:
        stack.start()
        config_file = save_profile(profile_name, stack.profile())
        save_profile(f"{profile_name}-cognito", stack.cognito_profile())
        _print_local_banner(stack, profile_name, str(config_file))
        run_until_stopped(stack)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM is how `local` is meant to stop
    finally:
        stack.stop()
    note("iotnotify local: stopped")


def _print_local_banner(stack: Any, profile: str, config_file: str) -> None:
    """Tell a person what `local` started and how to use it."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    cfg = stack.config
    console.print("[bold green]iotnotify local[/] is running on loopback (Ctrl-C stops it)")
    console.print(f"  broker   wss://127.0.0.1:{cfg.wss_port}/mqtt  MQTT over WebSocket with TLS (CA {stack.tls.ca_file})")
    console.print(f"  broker   mqtt://127.0.0.1:{cfg.mqtt_port}  plain MQTT (Mosquitto) for other clients")
    console.print(f"  keys     {stack.endpoint_url}  keys last {cfg.lifetime} s, topics {', '.join(cfg.topics)}")
    console.print(f"  page     {stack.page_url}  the tutorial's page: open it in a browser "
                  f"(it connects to {stack.page_mqtt_url}, no TLS: loopback only)")
    if cfg.permissive:
        console.print("  rules    [bold yellow]permissive[/]: signatures checked; no policy, limits or throttle")
    else:
        console.print("  rules    AWS IoT Core's: the keys' policy, limits, 100 publishes/s per connection each way, "
                      f"connections closed after {cfg.max_connection_duration:g} s, sessions kept "
                      f"{cfg.max_session_expiry} s (refusals are logged here)")
    others = f" and {', '.join(cfg.cors_origins)}" if cfg.cors_origins else " only (--cors-origin adds others)"
    console.print(f"  browsers pages from the stack's own origins{others} may get keys and connect")
    console.print(f"  profile  [bold]{profile}[/] written to {config_file}, and [bold]{profile}-cognito[/]: keys "
                  f"from the local Cognito identity pool {stack.cognito_profile()['cognito_pool']}")
    console.print("Try, in another terminal:")
    console.print(f"  iotnotify --profile {profile} subscribe 'demo/#' -v")
    console.print(f"  iotnotify --profile {profile} send demo/hello 'hello'")


@click.command("deploy-template", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify deploy-template notifications && cd notifications
  sam deploy --guided       # answer y to "KeysFunction has no authentication. Is this okay?"
  sam delete                # everything it created goes""")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default="iotnotify-deploy",
                required=False)
def deploy_template_command(folder: Path) -> None:
    """Write the keys endpoint's SAM template and its function's code (the handler's files and the
    browser page only) to FOLDER (default: iotnotify-deploy), ready for `sam deploy --guided`."""
    from iotnotify.deploy import stale_build, write

    written = write(folder)
    click.echo(f"wrote {folder / 'template.yaml'} and {folder / 'function'} ({len(written) - 1} files); next:")
    click.echo(f"  cd {folder} && sam deploy --guided")
    if stale_build(folder):
        note(f"iotnotify: warning: {folder / '.aws-sam' / 'build'} holds an earlier `sam build`, which `sam deploy` "
             "would deploy instead: run `sam build` again first, or remove .aws-sam")
    click.echo('  (answer y to "KeysFunction has no authentication. Is this okay?": the keys endpoint is public by '
               "design; its keys may only use IoT, on the topics you configure)")


@click.command("setup-role", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify setup-role --dry-run                   # what it would create or change, changing nothing
  iotnotify setup-role --region eu-west-1 --topics '/serverless/pubsub,alerts/*'
  iotnotify setup-role --aws-profile admin --role-name my-notifications
  iotnotify setup-role --trust arn:aws:iam::123456789012:role/keys-function""")
@click.option("--role-name", default="serverless-notifications", show_default=True, metavar="NAME",
              help="Name of the role to create or update.")
@click.option("--trust", metavar="ARN",
              help="Who may assume the role. A new role trusts the account itself by default; an existing "
                   "role keeps its trust policy unless this is given.")
@click.option("--region", metavar="REGION", help="Region the role's IoT permissions are for (default: the AWS "
                                                 "session's).")
@click.option("--topics", metavar="T1,T2", help="Topics the role may use (PREFIX/* for every topic below "
                                                "PREFIX/), as the endpoint's IOTNOTIFY_TOPICS (default: any).")
@click.option("--private-topic-prefix", metavar="PREFIX",
              help="With --topics: the role may also subscribe and receive below PREFIX/, as the endpoint's "
                   "IOTNOTIFY_PRIVATE_TOPIC_PREFIX.")
@click.option("--force", is_flag=True, help="Update a role that has other policies too (they are kept, and listed).")
@click.option("--dry-run", is_flag=True, help="Show what would be created or changed, and change nothing.")
@click.option("--aws-profile", metavar="NAME", help="AWS profile to use (default: boto3's credential chain).")
def setup_role_command(role_name: str, trust: str | None, region: str | None, topics: str | None,
               private_topic_prefix: str | None, force: bool, dry_run: bool, aws_profile: str | None) -> None:
    """Create the notifications role the keys endpoint assumes (IoT only, in one region); update it
    if it exists, printing what changed."""
    from iotnotify.aws import aws_errors
    from iotnotify.errors import UsageError
    from iotnotify.role import ROLE_POLICY_NAME, OtherPolicies, setup_role
    from iotnotify.server.policy import IOT_ACTIONS, PolicyError

    topic_list = [t.strip() for t in (topics or "").split(",") if t.strip()]
    if private_topic_prefix and not topic_list:
        raise UsageError("--private-topic-prefix needs --topics (without --topics the role may use any topic)")
    aws, region = _aws_in(aws_profile, region)
    try:
        with aws_errors():
            result = setup_role(aws.client("iam"), aws.client("sts"), role_name, trust, region=region,
                                      topics=topic_list, private_prefix=private_topic_prefix, force=force,
                                      dry_run=dry_run)
    except OtherPolicies as e:
        raise UsageError(str(e)) from None
    except PolicyError as e:
        raise UsageError(f"--topics or --private-topic-prefix: {e}") from None
    verb = ("would create" if dry_run else "created") if result.created else (
        ("would update" if dry_run else "updated") if result.changes else "unchanged")
    click.echo(f"{verb} role {role_name}: {result.arn}")
    for principal in result.trusted:
        whole_account = " (any principal of the account allowed sts:AssumeRole on it)" if principal.endswith(
            ":root") else ""
        click.echo(f"  trusted principal: {principal}{whole_account}")
    if not result.created and trust is None:
        click.echo("  trust policy kept (--trust ARN replaces it)")
    scope = f"in {region}, account {result.arn.split(':')[4]}"
    scope += f", topics {', '.join(topic_list)}" if topic_list else ", any topic"
    actions = ", ".join(IOT_ACTIONS)
    click.echo(f"  inline policy {ROLE_POLICY_NAME}: allow {actions} {scope} (keys get less, by session policy)")
    if result.others:
        note(f"iotnotify: warning: role {role_name} keeps other policies, which its keys get besides IoT: "
              f"{', '.join(result.others)}")
    for change in result.changes:
        click.echo(_diff(change.name, change.before, change.after), nl=False)


def _aws_in(profile: str | None, region: str | None) -> tuple[Any, str]:
    """A boto3 session (the profile's, else boto3's chain) and the region to work in: `region`,
    else the session's; ConfigError if there is none."""
    from iotnotify.aws import session
    from iotnotify.errors import ConfigError

    aws = session(profile)
    region = region or aws.region_name
    if not region:
        raise ConfigError("no AWS region: use --region, set AWS_REGION or the profile's region")
    return aws, region


def _diff(name: str, before: Any, after: Any) -> str:
    """A unified diff of two policy documents (None: absent), as indented JSON."""
    import difflib
    import json

    def lines(document: Any) -> list[str]:
        return [] if document is None else (json.dumps(document, indent=2, sort_keys=True) + "\n").splitlines(True)

    return "".join(difflib.unified_diff(lines(before), lines(after), f"{name} (before)", f"{name} (after)"))


@click.command("setup-cognito", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify setup-cognito --identity eu-west-1:0a1b2c3d-... --topics '/serverless/pubsub,alerts/*' --dry-run
  iotnotify setup-cognito --identity "$ID" --private-topic-prefix users --aws-profile admin
  iotnotify setup-cognito --local --identity "$ID"       # an identity of `iotnotify local`'s pool""")
@click.option("--identity", "identities", multiple=True, required=True, metavar="ID",
              help="An authenticated Cognito identity id to attach the policy to (repeatable).")
@click.option("--topics", metavar="T1,T2",
              help="Topics the identities may use (PREFIX/* for every topic below PREFIX/), as IOTNOTIFY_TOPICS "
                   "(default: /serverless/pubsub; with --local, the local stack's default topics).")
@click.option("--private-topic-prefix", metavar="PREFIX",
              help="The identities may also subscribe and receive on PREFIX/<identity id>.")
@click.option("--policy-name", default="iotnotify-cognito", show_default=True, metavar="NAME",
              help="The AWS IoT policy to create or update.")
@click.option("--region", metavar="REGION", help="Region of the AWS IoT policy (default: the AWS session's).")
@click.option("--dry-run", is_flag=True, help="Show what would be created, changed or attached; change nothing.")
@click.option("--aws-profile", metavar="NAME", help="AWS profile to use (default: boto3's credential chain).")
@click.option("--local", "local_stack", is_flag=True,
              help="Attach the policy to identities of `iotnotify local`'s Cognito pool instead (no AWS account).")
def setup_cognito_command(identities: tuple[str, ...], topics: str | None, private_topic_prefix: str | None,
                          policy_name: str, region: str | None, dry_run: bool, aws_profile: str | None,
                          local_stack: bool) -> None:
    """Give authenticated Cognito identities the AWS IoT policy AWS IoT wants for them (scoped as
    the endpoint's keys, the identity id as the client id), creating or updating it."""
    from iotnotify.aws import aws_errors
    from iotnotify.cognito.setup import setup_cognito
    from iotnotify.errors import UsageError
    from iotnotify.server.policy import PolicyError

    if local_stack and (region or aws_profile):
        raise UsageError("--local attaches the policy for the local stack: --region and --aws-profile are AWS's")
    if local_stack:
        from iotnotify.local import DEFAULT_TOPICS
        from iotnotify.local.keys_server import LOCAL_REGION

        topics, region = topics or ",".join(DEFAULT_TOPICS), LOCAL_REGION
    topic_list = [t.strip() for t in (topics or "/serverless/pubsub").split(",") if t.strip()]
    try:
        if local_stack:
            result = _setup_local_cognito(topic_list, private_topic_prefix, list(identities), policy_name, dry_run)
        else:
            aws, region = _aws_in(aws_profile, region)
            with aws_errors():
                result = setup_cognito(aws.client("iot", region_name=region), aws.client("sts"), region=region,
                                       topics=topic_list, private_prefix=private_topic_prefix,
                                       identities=list(identities), policy_name=policy_name, dry_run=dry_run)
    except PolicyError as e:
        raise UsageError(f"--topics or --private-topic-prefix: {e}") from None
    would = "would " if dry_run else ""
    if result.created:
        verb = "would create" if dry_run else "created"
    else:
        verb = ("would update" if dry_run else "updated") if result.changed else "unchanged"
    click.echo(f"{verb} AWS IoT policy {policy_name}: {', '.join(topic_list)} in {region}, client id = identity id")
    for identity in result.attached:
        click.echo(f"  {would}attach{'' if dry_run else 'ed'} to {identity}")
    for identity in result.already:
        click.echo(f"  already attached to {identity}")
    if result.created or result.changed:
        click.echo(_diff(f"AWS IoT policy {policy_name}", result.before, result.policy), nl=False)


def _setup_local_cognito(topics: list[str], private_prefix: str | None, identities: list[str], policy_name: str,
                         dry_run: bool) -> Any:
    """setup-cognito for the local stack's pool: the same policy, attached in the stack's state folder."""
    from iotnotify.cognito.setup import CognitoSetup
    from iotnotify.errors import LocalStackError
    from iotnotify.local.iot_policies import attach
    from iotnotify.local.keys_server import LOCAL_ACCOUNT, LOCAL_REGION
    from iotnotify.local.stack import default_state_dir
    from iotnotify.server.policy import identity_policy

    policy = identity_policy(LOCAL_REGION, LOCAL_ACCOUNT, topics, private_prefix)
    try:
        before, attached, already = attach(default_state_dir(), policy_name, policy, identities, dry_run)
    except (OSError, ValueError) as e:  # files.Unsafe too: a folder that is not the user's alone
        raise LocalStackError(f"cannot attach the policy for the local stack: {e}") from None
    return CognitoSetup(policy_name, policy, before, attached, already)


@click.command("setup-rule", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify setup-rule alerts --filter 'alerts/#' --email oncall@example.com --dry-run
  iotnotify setup-rule alerts --filter 'alerts/#' --email oncall@example.com   # SNS mails a link to confirm
  iotnotify setup-rule deploys --filter 'deploy/+/done' --sns-topic arn:aws:sns:eu-west-1:123456789012:ops
  iotnotify setup-rule alerts --delete""")
@click.argument("name")
@click.option("--filter", "topic_filter", metavar="FILTER", help="The messages to forward (MQTT filter: + and #).")
@click.option("--sns-topic", metavar="ARN", help="Forward to this SNS topic (its subscribers: e-mail, SMS, apps).")
@click.option("--email", metavar="ADDRESS",
              help="Make an SNS topic for the rule and subscribe ADDRESS to it (SNS mails a confirmation link first).")
@click.option("--delete", is_flag=True, help="Delete the rule, its role and the SNS topic setup-rule made for it.")
@click.option("--region", metavar="REGION", help="Region of the rule (default: the AWS session's).")
@click.option("--dry-run", is_flag=True, help="Show what would be created or changed, and change nothing.")
@click.option("--aws-profile", metavar="NAME", help="AWS profile to use (default: boto3's credential chain).")
def setup_rule_command(name: str, topic_filter: str | None, sns_topic: str | None, email: str | None, delete: bool,
                       region: str | None, dry_run: bool, aws_profile: str | None) -> None:
    """Forward the messages on FILTER to Amazon SNS, for people away from a terminal: an AWS IoT topic
    rule NAME, an SNS topic (with --email; or yours, --sns-topic) and a role AWS IoT assumes that may
    publish to that one SNS topic. Run again, it updates what differs and prints the diffs."""
    from iotnotify.aws import aws_errors
    from iotnotify.rule import check, delete_rule, setup_rule

    check(name, topic_filter, sns_topic, email, delete)
    aws, region = _aws_in(aws_profile, region)
    with aws_errors():
        clients = {service: aws.client(service, region_name=region) for service in ("iot", "iam", "sns", "sts")}
        if delete:
            result = delete_rule(clients, name, region=region, dry_run=dry_run)
        else:
            assert topic_filter is not None  # noqa: S101 - check() said so
            result = setup_rule(clients, name, topic_filter, region=region, sns_topic=sns_topic, email=email,
                                dry_run=dry_run)
    would = "would be " if dry_run else ""
    if delete:
        for what in result.deleted:
            click.echo(f"{'would delete' if dry_run else 'deleted'} {what}")
        if not result.deleted:
            click.echo(f"nothing to delete: no rule {name}, role or SNS topic of setup-rule's")
        return
    verb = "unchanged" if not result.changes and not result.created else f"{would}set up"
    click.echo(f"rule {name} {verb}: messages on {topic_filter} -> {result.topic_arn}")
    for what in result.created:
        click.echo(f"  {would}created {what}")
    if result.subscription == "added":
        click.echo(f"  {would}subscribed {email}: SNS mails it a link, and sends nothing until it is followed")
    elif result.subscription == "pending":
        click.echo(f"  {email} has not confirmed yet: SNS sends nothing until its link is followed")
    for change in result.changes:
        click.echo(_diff(change.name, change.before, change.after), nl=False)
