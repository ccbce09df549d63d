"""Retained messages through AWS IoT's API (`--aws`): ListRetainedMessages, GetRetainedMessage, and
Publish with retain to clear one. boto3 is loaded only here (and in aws.py's other users)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iotnotify.aws import aws_errors, session
from iotnotify.messages import Message
from iotnotify.times import iso
from iotnotify.topics import filter_matches


@dataclass(frozen=True)
class Retained:
    """What ListRetainedMessages says of one: topic, payload size, QoS, last modified (epoch s)."""

    topic: str
    size: int
    qos: int
    modified: float

    def record(self) -> dict[str, object]:
        """Its JSON line for `retained list --json`."""
        return {"topic": self.topic, "payload_size": self.size, "qos": self.qos, "last_modified": iso(self.modified)}


def data_client(profile: str | None) -> Any:
    """An iot-data client for the account's data endpoint (iot:DescribeEndpoint, iot:Data-ATS)."""
    aws = session(profile)
    with aws_errors():
        host = aws.client("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        return aws.client("iot-data", endpoint_url=f"https://{host}")


def list_retained(client: Any, topic_filter: str) -> list[Retained]:
    """Every retained message whose topic matches `topic_filter`, in the API's order."""
    found = []
    with aws_errors():
        for page in client.get_paginator("list_retained_messages").paginate():
            for item in page.get("retainedTopics", []):
                if filter_matches(topic_filter, item["topic"]):
                    found.append(Retained(item["topic"], int(item.get("payloadSize", 0)), int(item.get("qos", 0)),
                                          int(item.get("lastModifiedTime", 0)) / 1000))
    return found


def get_retained(client: Any, topic: str) -> Message | None:
    """The retained message of `topic` (its time: when it was last modified); None if there is none."""
    import botocore.exceptions

    with aws_errors():
        try:
            answer = client.get_retained_message(topic=topic)
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
    return Message(answer["topic"], bytes(answer.get("payload") or b""), int(answer.get("qos", 0)), True,
                   int(answer.get("lastModifiedTime", 0)) / 1000)


def clear_retained(client: Any, topics: list[str]) -> None:
    """An empty retained message to each topic (iot:Publish and iot:RetainPublish on it)."""
    with aws_errors():
        for topic in topics:
            client.publish(topic=topic, qos=1, retain=True, payload=b"")


class AwsRetained:
    """Retained messages through AWS IoT's API, with the AWS profile's credentials."""

    def __init__(self, profile: str | None) -> None:
        self.client = data_client(profile)

    def find(self, topic_filter: str) -> list[Retained]:
        return list_retained(self.client, topic_filter)

    def get(self, topic: str) -> Message | None:
        return get_retained(self.client, topic)

    def clear(self, topics: list[str]) -> None:
        clear_retained(self.client, topics)

    def close(self) -> None:
        """Nothing to close: each call is an HTTPS request."""
