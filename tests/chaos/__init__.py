"""The fault campaign (issue 16): see campaign.py."""
