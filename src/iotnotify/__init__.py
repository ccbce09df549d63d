"""iotnotify: real-time notifications on AWS IoT Core (or a local Mosquitto) from the command line."""

__version__ = "0.1.0"
