"""Cirrus: an IaaS control plane that speaks the OpenStack APIs."""

__version__ = "0.1.0"
