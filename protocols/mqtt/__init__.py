"""MQTT 3.1.1 over WebSocket: pure codec (codec, packets, topics) and connection handler."""
