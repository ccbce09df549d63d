"""`python -m iotnotify`: the same as the `iotnotify` command."""

from iotnotify.cli import main

main()
