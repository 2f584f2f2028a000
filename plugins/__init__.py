"""Built-in er-art plugins, registered through entry points like any third-party plugin."""
