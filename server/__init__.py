"""`akg-op serve`: the session service over HTTP (FastAPI + LangServe, served by uvicorn)."""
