"""Retained messages: over MQTT (mqtt.py: what a new subscriber is sent, cleared with an empty
retained message), or through AWS IoT's API for `--aws` (aws.py, boto3)."""
