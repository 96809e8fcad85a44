"""The MQTT source: JSON and Sparkplug B payloads, acknowledged once spooled."""
