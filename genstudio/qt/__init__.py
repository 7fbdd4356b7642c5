"""All Qt code lives here. Nothing in genstudio.core imports this package."""
