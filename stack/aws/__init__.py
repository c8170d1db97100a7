"""provision.py's AWS provider: EC2 hosts, security groups, a key pair and alerts, found by their tags."""
