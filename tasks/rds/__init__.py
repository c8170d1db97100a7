"""The deploy's side of a managed database (`db_service: rds`): the backends' TLS and the setup backend's roles."""
