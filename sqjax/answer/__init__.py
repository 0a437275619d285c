"""The answer side of ScaleQuest: best-of-n selection with majority-vote agreement, the
LM-as-judge and reward-model scoring of (question, response) pairs, and benchmark evaluation."""
