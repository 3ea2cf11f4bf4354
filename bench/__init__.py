"""Side-by-side benchmarks of textmtl against Hugging Face BART (scripts, not tests). See bench/README.md."""
