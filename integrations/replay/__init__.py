"""Replay (coming, issue 12): dry runs and bulk replays that enforce each job's declared replay
decision (`integrations.jobs.registry`). Empty until then."""
