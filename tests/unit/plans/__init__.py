"""Unit: plans (shape hash, summary, scrubbing, advice rules) and the regression judge."""
