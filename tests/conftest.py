"""Test-wide settings live in the repository's root ``conftest.py`` (offline Hugging Face, a quiet
CPU, a temporary learner home), so that the lessons run by nbval get them too."""
