from pyinfra.api import deploy


@deploy("x")
def deploy_backend():
    pass
