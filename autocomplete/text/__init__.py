"""Text around the loop: what the model reads (frames, healing), what comes out (streaming, completions, suggestions)."""
