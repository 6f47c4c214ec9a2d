"""The SDK's version: part of every plugin venv's content hash and of the handshake."""

SDK_VERSION = "0.1.0"
