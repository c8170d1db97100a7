"""Whether AWS credentials are configured here, answered without boto3 (a second to import) and
without the network, so a command that only might call AWS pays nothing when it cannot."""

import os
from pathlib import Path


def credentials_configured() -> bool:
    """Whether this machine names AWS credentials (variables or ~/.aws files), without asking
    anything on the network (botocore's own search ends at the EC2 metadata address)."""
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        return True
    files = (
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"),
    )
    return any(Path(name).expanduser().exists() for name in files)
