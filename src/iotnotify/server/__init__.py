"""The AWS side: the keys endpoint's Lambda handler, its session policies, and the role setup.

Only stdlib and boto3 here (boto3 is in the Lambda runtime), so the package deploys as it is.
"""
