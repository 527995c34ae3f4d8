#!/usr/bin/env python3
"""Create a blob container in Azurite with a SharedKey-signed request (stdlib only).

object_store has no create-container call; the tests need one container per repository.
Usage: azurite_container.py ENDPOINT CONTAINER   (ENDPOINT like http://127.0.0.1:10000/devstoreaccount1)
"""
import base64, hashlib, hmac, sys, urllib.request
from email.utils import formatdate

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

endpoint, container = sys.argv[1].rstrip("/"), sys.argv[2]
date, version = formatdate(usegmt=True), "2021-08-06"
path = urllib.parse.urlparse(endpoint).path + "/" + container
# Fields: verb, encoding, language, length (empty for 0), MD5, type, date, 4 conditionals, range.
to_sign = "PUT\n\n\n\n\napplication/octet-stream\n\n\n\n\n\n\n" + f"x-ms-date:{date}\nx-ms-version:{version}\n" + f"/{ACCOUNT}{path}\nrestype:container"
signature = base64.b64encode(hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()).decode()
request = urllib.request.Request(f"{endpoint}/{container}?restype=container", method="PUT", data=b"",
    headers={"Content-Type": "application/octet-stream", "x-ms-date": date, "x-ms-version": version, "Authorization": f"SharedKey {ACCOUNT}:{signature}"})
try:
    urllib.request.urlopen(request)
except urllib.error.HTTPError as e:
    if e.code != 409:  # already exists
        sys.exit(f"creating container {container}: {e.code} {e.read().decode(errors='replace')}")
