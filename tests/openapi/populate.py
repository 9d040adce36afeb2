"""Populates a running Basalt with collections of every field kind, an auth collection,
relations, a view and a superusers-only collection, plus a few records: the server the
OpenAPI checks (scripts/openapi.sh) validate and fuzz. Prints the superuser's token, then
on a second line the token of `alice`, a record of the auth collection `authors`.

usage: populate.py BASE_URL SUPERUSER_EMAIL SUPERUSER_PASSWORD
"""

import json
import sys
import urllib.request

base, email, password = sys.argv[1:4]


def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", token)
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(req, data, timeout=30) as res:
        text = res.read()
        return json.loads(text) if text else None


su = call("POST", "/api/collections/_superusers/auth-with-password",
          {"identity": email, "password": password})["token"]

authors = call("POST", "/api/collections", {
    "name": "authors", "type": "auth",
    "listRule": "", "viewRule": "", "createRule": "",
    "updateRule": "id = @request.auth.id", "deleteRule": "id = @request.auth.id",
    "fields": [
        {"name": "name", "type": "text", "max": 100},
        {"name": "website", "type": "url"},
        {"name": "notes", "type": "text", "hidden": True},
    ],
}, su)

kinds = call("POST", "/api/collections", {
    "name": "kinds", "type": "base",
    "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
    "fields": [
        {"name": "title", "type": "text", "required": True, "min": 2, "max": 50},
        {"name": "body", "type": "editor"},
        {"name": "score", "type": "number", "min": 0, "max": 100},
        {"name": "count", "type": "number", "onlyInt": True},
        {"name": "done", "type": "bool"},
        {"name": "contact", "type": "email"},
        {"name": "link", "type": "url"},
        {"name": "due", "type": "date"},
        {"name": "status", "type": "select", "values": ["draft", "live"], "maxSelect": 1},
        {"name": "labels", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
        {"name": "meta", "type": "json"},
        {"name": "owner", "type": "relation", "collectionId": authors["id"], "maxSelect": 1},
        {"name": "readers", "type": "relation", "collectionId": authors["id"], "maxSelect": 5},
        {"name": "cover", "type": "file", "maxSelect": 1},
        {"name": "attachments", "type": "file", "maxSelect": 3},
        {"name": "internal", "type": "text", "hidden": True},
        {"name": "created", "type": "autodate", "onCreate": True},
        {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True},
    ],
}, su)

call("POST", "/api/collections", {
    "name": "posts", "type": "base",
    "listRule": "", "viewRule": "", "createRule": "@request.auth.id != ''",
    "fields": [
        {"name": "title", "type": "text", "required": True},
        {"name": "author", "type": "relation", "collectionId": authors["id"], "maxSelect": 1},
        {"name": "kind", "type": "relation", "collectionId": kinds["id"], "maxSelect": 1},
    ],
}, su)

call("POST", "/api/collections", {
    "name": "vault", "type": "base",
    "fields": [{"name": "secret", "type": "text"}],
}, su)

call("POST", "/api/collections", {
    "name": "post_titles", "type": "view", "listRule": "", "viewRule": "",
    "viewQuery": "SELECT id, title FROM posts",
}, su)

alice = call("POST", "/api/collections/authors/records", {
    "email": "alice@example.com", "password": "alice-password", "passwordConfirm": "alice-password",
    "name": "Alice", "emailVisibility": True,
})
kind = call("POST", "/api/collections/kinds/records", {
    "title": "first", "score": 5, "count": 2, "done": True, "status": "live",
    "labels": ["a", "b"], "meta": {"k": [1, 2]}, "owner": alice["id"], "readers": [alice["id"]],
})
call("POST", "/api/collections/posts/records",
     {"title": "hello", "author": alice["id"], "kind": kind["id"]}, su)
call("POST", "/api/collections/vault/records", {"secret": "s"}, su)
user = call("POST", "/api/collections/authors/auth-with-password",
            {"identity": "alice@example.com", "password": "alice-password"})["token"]
print(su)
print(user)
