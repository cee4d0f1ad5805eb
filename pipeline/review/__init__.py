"""Looking at predictions before the leaderboard does: quality features, score estimates, QA pages."""
