"""The running daemon: wiring from config, run and drain, status, admin endpoint, systemd, process policy."""
