"""The tutorial's browser page: index.html and static/ (page.js, page.css, and npm's builds of MQTT.js
and aws4fetch, copied by scripts/build-web)."""
