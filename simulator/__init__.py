"""A local simulator of the WeChat official-account platform: OAuth, API and pushes."""

from simulator.app import AuthorizeResult, Simulator
from simulator.followers import Follower

__all__ = ["AuthorizeResult", "Follower", "Simulator"]
