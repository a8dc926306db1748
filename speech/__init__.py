"""Runtime speech: audio decoding and resampling, faster-whisper transcription, timed words and
speakers. Serving imports it for live calls and uploads; ``data`` imports it for offline
transcription of audio datasets. Nothing here imports torch or the training stack."""
