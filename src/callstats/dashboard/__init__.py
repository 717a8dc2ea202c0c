"""The live dashboard: static files shipped in the package, served by the app itself."""
