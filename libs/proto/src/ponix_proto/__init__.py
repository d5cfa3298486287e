"""Ponix envelope types: betterproto API and upb-backed hot-path decoding."""
