"""The run: one request from its settings to its pictures — the schedule and its step rule, samplers, the init image,
step capture, previews, the prompt cache and this server's timing. Nothing here owns a loaded model."""
