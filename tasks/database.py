from pyinfra.api import deploy


@deploy("x")
def deploy_database():
    pass
