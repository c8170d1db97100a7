"""Code shared by provision.py, inventory.py and deploy.py."""
