"""Helpers that inject faults (network cuts, silent drops) between Cirrus and its services."""
