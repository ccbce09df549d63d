"""Cognito identity pools, in the three places iotnotify meets them: keys from a pool for a
command (keys.py, `--cognito-pool`: a key source keys/__init__.py picks), the AWS IoT policy an
authenticated identity needs (setup.py, `iotnotify setup-cognito`, boto3), and the local stack's
own pool (local.py, `iotnotify local`'s GetId and GetCredentialsForIdentity). Nothing is imported
here: each is imported where it is used."""
