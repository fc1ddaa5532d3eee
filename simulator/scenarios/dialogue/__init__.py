"""scenarios/dialogue"""
