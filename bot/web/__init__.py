"""The web companion: rank, explore and like in a browser, in the bot process.

server.py (the aiohttp.web app and its middlewares, started by
bot/resources.py) · routes.py (pages and the JSON API) · pages.py (what they
share) · auth.py (login links, sessions, CSRF, rate limits) · gallery.py (what
a member may see, and For you) · store.py (its tables) · templates/ · static/
"""
