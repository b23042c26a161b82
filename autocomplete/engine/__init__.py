"""The model: resolve, load, run the next-token loop; or an OpenAI-compatible engine (--api)."""
