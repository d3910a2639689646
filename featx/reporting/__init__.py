"""Reports (Markdown/HTML blocks) and every figure."""
