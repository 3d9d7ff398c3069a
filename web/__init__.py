"""Follower-facing web routes and pages."""
