"""--provider local: real systemd Debian hosts on this machine (systemd-nspawn on a bridge)."""
