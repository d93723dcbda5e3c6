"""The session service: the one place that starts, answers, resumes, locks and describes sessions,
for every entry point (the CLI, the HTTP server)."""
