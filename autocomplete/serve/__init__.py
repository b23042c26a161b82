"""The warm model server and its client."""
