"""The one HTTP surface to GitHub: the client (retries, rate limits, ETags) and the endpoints."""

DEFAULT_API_URL = "https://api.github.com"
