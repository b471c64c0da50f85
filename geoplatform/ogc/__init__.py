"""OGC API: the platform's standards-based web interface over the cube."""
