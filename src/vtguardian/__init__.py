"""vtguardian: VirusTotal-backed threat intelligence from a home network's own traffic."""

__version__ = "0.1.0"
