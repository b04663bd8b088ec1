"""A local S3 for the end-to-end tests: moto's server on a free loopback port,
with IAM authentication on, so a wrong secret is refused as S3 would refuse it.

Creates a user allowed s3:* and its access key, then the buckets named on the
command line (with that key), prints one JSON line
{"endpoint", "access_key_id", "secret_access_key"} and serves until its
standard input closes (the test that started it ends, however it ends).

usage: s3_server.py <bucket>...
"""

import json
import os
import socket
import sys

# The three setup requests below go unauthenticated; every request after
# them is checked against IAM (moto counts requests from its start).
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
endpoint = f"http://127.0.0.1:{port}"

setup = dict(endpoint_url=endpoint, region_name="us-east-1")
iam = boto3.client("iam", aws_access_key_id="setup", aws_secret_access_key="setup", **setup)
iam.create_user(UserName="synchub")
iam.put_user_policy(
    UserName="synchub",
    PolicyName="s3",
    PolicyDocument=json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
    ),
)
key = iam.create_access_key(UserName="synchub")["AccessKey"]
s3 = boto3.client(
    "s3",
    aws_access_key_id=key["AccessKeyId"],
    aws_secret_access_key=key["SecretAccessKey"],
    **setup,
)
for bucket in sys.argv[1:]:
    s3.create_bucket(Bucket=bucket)

print(
    json.dumps(
        {
            "endpoint": endpoint,
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        }
    ),
    flush=True,
)
sys.stdin.read()
server.stop()
