"""Scoring (DELT's first stage): the scorer registry and the scorers themselves.

``registry`` holds the name -> ``ScorerInfo`` table that the CLI, the app, spec validation and the cost
estimate read; the scorers live in ``baselines`` and ``lqs`` (numerics in ``lqs_core`` / ``per_sample``).
"""

from .registry import SCORERS, ScoreContext, ScorerInfo, get_scorer, register, score

__all__ = ["SCORERS", "ScoreContext", "ScorerInfo", "get_scorer", "register", "score"]
