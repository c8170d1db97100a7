"""Pure renderers: settings and host data in, file text out. No I/O besides reading templates/."""
