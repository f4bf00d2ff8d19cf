"""Publishing results: the MQTT contract (payloads) and its paho-mqtt implementation."""
