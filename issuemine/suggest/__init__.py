"""Label suggestions: a trained, measured model that proposes stage, symptom and cause."""
