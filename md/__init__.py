"""mlpot's molecular-dynamics engine. Placeholder until issue 4 lands."""
