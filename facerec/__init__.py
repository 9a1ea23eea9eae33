"""Pieces both services share: settings, the error shape and the process supervisor."""
