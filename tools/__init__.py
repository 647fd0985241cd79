"""Maintainer tools: tools/look.py (every lesson as a learner sees it) and what it and the tests share."""
