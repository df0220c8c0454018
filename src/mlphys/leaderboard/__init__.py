"""Leaderboards of the course's challenges (any assignment whose plug-in has a ``Challenge``).

The grader turns each scored submission into an `Entry`; `write_boards` ranks them per track and writes a CSV,
a JSON file and a static web page. While the challenge runs the boards rank by the public cost and never show
the private one; the final board ranks by the private cost. Students appear under their opted-in name or a
salted `pseudonym`, never under their student id.
"""

from mlphys.leaderboard.entry import BoardSpec, Entry
from mlphys.leaderboard.export import write_boards
from mlphys.leaderboard.pseudonyms import pseudonym
from mlphys.leaderboard.ranking import TIE_BREAK, Row, rank

__all__ = ["TIE_BREAK", "BoardSpec", "Entry", "Row", "pseudonym", "rank", "write_boards"]
