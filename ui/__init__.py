"""App-side helpers (Streamlit only): state keys, cached loaders, sidebar, jobs, live polling."""
