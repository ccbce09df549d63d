"""`keygen`: the key pairs `send --sign` signs with and `--verify` files trust (signing.py)."""

from __future__ import annotations

import click

from iotnotify.cli.options import CONTEXT
from iotnotify.cli.terminal import note


@click.command("keygen", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify keygen ci                                  # prints: ssh-ed25519 AAAA... ci
  iotnotify keygen ci >> trusted.keys                  # on the subscriber's side: --verify trusted.keys
  iotnotify send deploy/web v42 --sign ci
  iotnotify subscribe 'deploy/#' --verify trusted.keys --json   # "signed_by": "ci"
  iotnotify keygen ci --public                         # the line again""")
@click.argument("name")
@click.option("--public", is_flag=True, help="Print the public key line of the existing key NAME; make nothing.")
@click.option("--force", is_flag=True, help="Replace a key NAME that exists (what it signed no longer verifies).")
def keygen_command(name: str, public: bool, force: bool) -> None:
    """Make an Ed25519 key pair NAME in the user's config folder (the private key readable by the
    user alone) for `send --sign NAME`, and print its public key line, `ssh-ed25519 KEY NAME`, for
    the --verify FILE of those who should trust it."""
    from iotnotify.signing import generate, load_signer, public_line

    if public:
        click.echo(public_line(load_signer(name).key.public_key(), name))
        return
    path, line = generate(name, force=force)
    note(f"iotnotify: private key {path} (yours alone: never share it), public key {path}.pub")
    click.echo(line)
