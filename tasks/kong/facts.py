"""What the Kong host has: its container (with the spec label) and the image."""

import shlex

from pyinfra.api import FactBase


class DockerContainer(FactBase):
    """{"label": <value of `label`>, "running": bool} for `container`, or None when it does not exist."""

    def requires_command(self, *args, **kwargs):
        return "docker"

    def command(self, container, label):
        template = f'{{{{index .Config.Labels "{label}"}}}} {{{{.State.Running}}}}'
        return f"docker container inspect --format {shlex.quote(template)} {shlex.quote(container)} 2>/dev/null || true"

    def process(self, output):
        label, _, running = " ".join(output).strip().rpartition(" ")
        if running not in ("true", "false"):
            return None
        # A container without the label shows an empty label: it never matches a spec hash.
        return {"label": label, "running": running == "true"}


class DockerImage(FactBase):
    """The local id of an image, or None when it was never pulled."""

    def requires_command(self, *args, **kwargs):
        return "docker"

    def command(self, image):
        return f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image)} 2>/dev/null || true"

    def process(self, output):
        return output[0].strip() if output and output[0].strip() else None
