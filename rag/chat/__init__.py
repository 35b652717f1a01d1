"""Chat: follow-up questions resolved against the conversation, conversations saved and shown."""
