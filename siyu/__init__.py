"""Siyu (私域): a self-hosted private-domain growth platform for brands in the WeChat ecosystem."""

__version__ = "0.1.0"
