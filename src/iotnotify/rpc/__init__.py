"""Request and response over MQTT 5: `request` (request.py) and `respond` (respond.py, with
child.py running its command for one request, bounded)."""
