"""A state's `database` record as provision.py writes it for an RDS instance on AWS (stack/state.py),
shared by the tests of the state, the inventory and the outputs that read it."""

AWS_DATABASE = {
    "service": "rds",
    "identifier": "des-db",
    "address": "des-db.abc.us-east-1.rds.amazonaws.com",
    "port": 5432,
    "master_user": "sprint2admin",
    "ca_bundle_url": "https://truststore.pki.rds.amazonaws.com/us-east-1/us-east-1-bundle.pem",
}
