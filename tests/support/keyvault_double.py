#!/usr/bin/env python3
"""A local stand-in for Azure Key Vault and its token endpoint, for coffer's tests.

No Key Vault emulator installs from the package registries, so this implements the documented
REST contract coffer uses, with real cryptography (RSA-OAEP-256 with 2048-bit keys):
  POST /{tenant}/oauth2/v2.0/token                    client_credentials grant (client secret)
  POST /keys/{name}[/{version}]/wrapkey?api-version=  {"alg","value"} -> {"kid","value"}
  POST /keys/{name}/{version}/unwrapkey?api-version=  {"alg","value"} -> {"kid","value"}
and errors in Key Vault's shape ({"error": {"code", "message", "innererror": {"code"}}}):
401 without a valid bearer token, 403 ForbiddenByRbac without the permission, 403 KeyDisabled
on a disabled key, 404 KeyNotFound. Test controls (no auth): POST /control/keys/{name}/rotate,
/control/keys/{name}/disable, /control/keys/{name}/enable.

Usage: keyvault_double.py PORT CLIENT:SECRET:PERMISSIONS...   e.g. admin:s3cret:wrap,unwrap
Key "coffer" exists from the start.
"""
import base64, json, secrets, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PORT = int(sys.argv[1])
CLIENTS = {}
for spec in sys.argv[2:]:
    client, secret, perms = spec.split(":")
    CLIENTS[client] = (secret, set(perms.split(",")))
TOKENS = {}
KEYS = {}  # name -> {"versions": [(version, private key)], "enabled": bool}
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def new_version(name):
    key = KEYS.setdefault(name, {"versions": [], "enabled": True})
    key["versions"].append((secrets.token_hex(16), rsa.generate_private_key(public_exponent=65537, key_size=2048)))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


new_version("coffer")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message, inner=None):
        body = {"error": {"code": code, "message": message}}
        if inner:
            body["error"]["innererror"] = {"code": inner}
        self.reply(status, body)

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if parts[:1] == ["control"]:
            _, _, name, action = parts
            if action == "rotate":
                new_version(name)
            elif action in ("disable", "enable"):
                KEYS[name]["enabled"] = action == "enable"
            return self.reply(200, {})
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            form = urllib.parse.parse_qs(body.decode())
            client = form.get("client_id", [""])[0]
            if CLIENTS.get(client, (None,))[0] != form.get("client_secret", [""])[0]:
                return self.reply(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
            if form.get("scope", [""])[0] != "https://vault.azure.net/.default":
                return self.reply(400, {"error": "invalid_scope", "error_description": "unexpected scope"})
            token = secrets.token_hex(16)
            TOKENS[token] = client
            return self.reply(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token})
        if len(parts) not in (3, 4) or parts[0] != "keys" or parts[-1] not in ("wrapkey", "unwrapkey"):
            return self.error(404, "NotFound", "no such operation")
        operation = parts[-1]
        auth = self.headers.get("Authorization", "")
        client = TOKENS.get(auth.removeprefix("Bearer "))
        if client is None:
            return self.error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
        name = parts[1]
        key = KEYS.get(name)
        if key is None:
            return self.error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        permission = operation.removesuffix("key")
        if permission not in CLIENTS[client][1]:
            return self.error(403, "Forbidden", f"Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/keys/{permission}/action'", "ForbiddenByRbac")
        if not key["enabled"]:
            return self.error(403, "Forbidden", f"Operation {operation} is not allowed on a disabled key.", "KeyDisabled")
        request = json.loads(body)
        if request.get("alg") != "RSA-OAEP-256":
            return self.error(400, "BadParameter", "Invalid algorithm")
        if len(parts) == 4:
            found = [k for v, k in key["versions"] if v == parts[2]]
            if not found:
                return self.error(404, "KeyNotFound", f"A key with (name/id) {name}/{parts[2]} was not found in this key vault.")
            version, private = parts[2], found[0]
        else:
            if operation == "unwrapkey":
                return self.error(400, "BadParameter", "unwrapkey needs a key version")
            version, private = key["versions"][-1]
        kid = f"http://127.0.0.1:{PORT}/keys/{name}/{version}"
        try:
            if operation == "wrapkey":
                value = private.public_key().encrypt(unb64url(request["value"]), OAEP)
            else:
                value = private.decrypt(unb64url(request["value"]), OAEP)
        except ValueError:
            return self.error(400, "BadParameter", "Unable to decrypt")
        self.reply(200, {"kid": kid, "value": b64url(value)})


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
