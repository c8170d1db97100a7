"""Which image new hosts boot: ami_id when set, else Canonical's newest Ubuntu 24.04 amd64 build.

Only new hosts use it; running hosts are never replaced because a newer build appeared.
"""

from stack.errors import UserError

CANONICAL = "099720109477"
NOBLE_NAMES = [
    "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
    "ubuntu/images/hvm-ssd/ubuntu-noble-24.04-amd64-server-*",
]


def newest(images: list[dict]) -> dict | None:
    return max(images, key=lambda image: image.get("CreationDate", ""), default=None)


def resolve_image(ec2, ami_id: str | None) -> tuple[str, str]:
    """(image id, its name) for new hosts."""
    if ami_id:
        images = ec2.describe_images(ImageIds=[ami_id])["Images"]
        if not images:
            raise UserError(
                f"ami_id {ami_id} is not visible in this region: AMI ids differ per region; "
                "check it or unset ami_id to use Ubuntu 24.04"
            )
        return ami_id, images[0].get("Name", ami_id)
    images = ec2.describe_images(
        Owners=[CANONICAL],
        Filters=[
            {"Name": "name", "Values": NOBLE_NAMES},
            {"Name": "architecture", "Values": ["x86_64"]},
            {"Name": "state", "Values": ["available"]},
        ],
    )["Images"]
    image = newest(images)
    if image is None:
        raise UserError(
            "no Canonical Ubuntu 24.04 amd64 image found in this region: set ami_id in "
            "config.yml to an Ubuntu 24.04 AMI id you may use (EC2 console > AMI Catalog)"
        )
    return image["ImageId"], image["Name"]
