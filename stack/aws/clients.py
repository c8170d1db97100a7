"""The one place that makes boto3 clients (tests point them at moto with AWS_ENDPOINT_URL).

Retries use botocore's "standard" mode: throttling and transient errors are retried with backoff;
`total_max_attempts` counts attempts, not retries. Short connect timeouts keep a wrong endpoint or
no network from hanging for minutes.
"""

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

from stack.errors import UserError

RETRIES = Config(
    retries={"mode": "standard", "total_max_attempts": 5},
    connect_timeout=10,
    read_timeout=60,
)


# For look-ups that have a fallback (inventory.py without a state file): fail fast.
QUICK = Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=5, read_timeout=20)

# Parsing botocore's service models (megabytes of JSON) costs about a second; one loader, which
# caches what it parsed, serves every session of a process that runs several (the tests,
# inventory.py after provision.py). Credentials are still looked up per session.
_LOADER = botocore.loaders.create_loader()


def session(region: str | None = None) -> boto3.session.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", _LOADER)
    return boto3.session.Session(botocore_session=core, region_name=region)


def check_region(region: str, where: boto3.session.Session) -> None:
    """Refuse a region botocore does not know before any call (AWS would fail to connect)."""
    known = where.get_available_regions("ec2")
    if known and region not in known:
        raise UserError(
            f"region {region!r} is not an EC2 region: set region in config.yml to one of "
            f"{', '.join(sorted(r for r in known if r.startswith(('us-', 'eu-'))))}, ... "
            f"(Learner Lab: us-east-1 or us-west-2)"
        )


class Clients:
    """Clients for one region, made on first use, one set per provision.py run."""

    def __init__(self, region: str, config: Config = RETRIES):
        self._session = session(region)
        check_region(region, self._session)
        self.region = region
        self.config = config
        self._made: dict[str, object] = {}
        self._identity: tuple[str, str] | None = None

    def make(self, service: str):
        if service not in self._made:
            self._made[service] = self._session.client(service, config=self.config)
        return self._made[service]

    @property
    def ec2(self):
        return self.make("ec2")

    @property
    def sns(self):
        return self.make("sns")

    @property
    def cloudwatch(self):
        return self.make("cloudwatch")

    @property
    def elbv2(self):
        return self.make("elbv2")

    @property
    def rds(self):
        return self.make("rds")

    @property
    def sts(self):
        return self.make("sts")

    def identity(self) -> tuple[str, str]:
        """(account id, partition) of the credentials, asked once per run."""
        if self._identity is None:
            arn = self.sts.get_caller_identity()["Arn"]  # arn:<partition>:sts::<account>:...
            _, partition, _, _, account = arn.split(":", 5)[:5]
            self._identity = (account, partition)
        return self._identity
