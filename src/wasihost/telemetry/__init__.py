"""Where readings go after the app state: history (and later MQTT, metrics)."""
