"""`python -m iotnotify`: the same as the `iotnotify` command."""

from iotnotify.launch import main

main()
