"""Test and demo helpers that ship with the package: sample telemetry, emulators."""
