"""The optimizer comparison the field makes: time to target, performance profiles, expected best accuracy against tuning budget, paired tests."""  # noqa: E501
