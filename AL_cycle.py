"""ActiveLearningAnalyzer (filled by the analyzer issue)."""
