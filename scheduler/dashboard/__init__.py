"""`fleet dashboard`: the fleet, every job's reason, logs and metric curves, in a browser, offline.

app.py answers each route from Client (the JSON API is the CLI's --json), svg.py draws the
charts, server.py serves it with the standard library, pages/ holds the HTML, CSS and the one
script the pages run; nothing is fetched from the internet.
"""
