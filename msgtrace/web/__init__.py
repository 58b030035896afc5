"""`msgtrace web`: the message trace page, dashboard and HTTP API for the help desk (Starlette).

Read-only over a store, on the library calls the CLI makes. Needs the `web` extra
(`pip install 'msgtrace[web]'`): starlette, uvicorn, jinja2, altair, vl-convert-python.
"""
