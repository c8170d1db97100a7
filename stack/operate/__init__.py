"""ssh, logs, manage, psql and status: operating the recorded hosts (python provision.py ...)."""
