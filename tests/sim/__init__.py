"""Atlassian Cloud simulator (OAuth 2.0 3LO + Jira/Confluence Cloud REST) for integration tests."""
