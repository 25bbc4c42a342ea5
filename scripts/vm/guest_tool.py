#!/usr/bin/env python3
"""The guest side's measuring tool for scripts/vm-test.sh (runs in the VM).

It reads the simulated Plex server's own listing through the Plex API (token
header, paging headers), independently of mediasync, and compares it with
`mediasync export`; it watches /api/status to find the moment to cut the
power and the end of a sync. Standard library only (the guest has python3).

  guest_tool.py listing-count --plex URL --token T
  guest_tool.py compare --plex URL --token T --export FILE --server NAME
  guest_tool.py wait-mid --plex URL --token T --server NAME --fraction F --timeout S
  guest_tool.py wait-synced --server NAME --timeout S
  guest_tool.py server-summary --server NAME
  guest_tool.py server-names
  guest_tool.py wait-listed --servers NAME,NAME --timeout S
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

STATUS_URL = "http://127.0.0.1:8787/api/status"

# Plex section type -> the item types listed in it (the codes Plex uses in
# `type=`), and each code's kind name as mediasync exports it.
SECTION_TYPES = {"movie": [1], "show": [2, 3, 4], "artist": [8, 9, 10]}
KIND_NAMES = {1: "movie", 2: "show", 3: "season", 4: "episode", 8: "artist", 9: "album", 10: "track"}
CHILD_KINDS = {"season", "episode", "album", "track"}
# The fields compared, as exported; every one is derived below from the Plex
# answer alone.
FIELDS = ("kind", "title", "sort_title", "parent_id", "updated_at", "added_at", "year",
          "index", "parent_index", "guid", "duration_ms", "thumb", "file")


def get_json(url, headers=None, timeout=30):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.load(answer)


def plex_get(plex, token, path, start=None, size=None):
    headers = {"Accept": "application/json", "X-Plex-Token": token}
    if start is not None:
        headers["X-Plex-Container-Start"] = str(start)
        headers["X-Plex-Container-Size"] = str(size)
    return get_json(plex.rstrip("/") + path, headers)["MediaContainer"]


def text(value):
    return None if value is None else str(value)


def plex_item(section_key, code, entry):
    """What an exact mirror holds for one Plex entry, keyed like the export."""
    kind = KIND_NAMES[code]
    media = (entry.get("Media") or [{}])[0]
    part = (media.get("Part") or [{}])[0]
    added_at = entry.get("addedAt")
    return (section_key, text(entry["ratingKey"])), {
        "kind": kind,
        "title": text(entry.get("title")),
        "sort_title": text(entry.get("titleSort")),
        "parent_id": text(entry.get("parentRatingKey")) if kind in CHILD_KINDS else None,
        "updated_at": entry.get("updatedAt", added_at if added_at is not None else 0),
        "added_at": added_at,
        "year": entry.get("year"),
        "index": entry.get("index"),
        "parent_index": entry.get("parentIndex"),
        "guid": text(entry.get("guid")),
        "duration_ms": entry.get("duration"),
        "thumb": text(entry.get("thumb")),
        "file": text(part.get("file")),
    }


def plex_listing(plex, token, page_size=1000):
    """Every item of every synced section, read page by page from the server."""
    items = {}
    for section in plex_get(plex, token, "/library/sections").get("Directory", []):
        for code in SECTION_TYPES.get(section.get("type"), []):
            start = 0
            while True:
                path = "/library/sections/%s/all?type=%d" % (section["key"], code)
                page = plex_get(plex, token, path, start, page_size)
                entries = page.get("Metadata", [])
                for entry in entries:
                    key, item = plex_item(text(section["key"]), code, entry)
                    items[key] = item
                start += len(entries)
                if not entries or start >= int(page.get("totalSize", 0)):
                    break
    return items


def export_items(path, server):
    items = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("server") != server:
                continue
            items[(text(row.get("library")), text(row.get("id")))] = {field: row.get(field) for field in FIELDS}
    return items


def compare(args):
    expected = plex_listing(args.plex, args.token)
    exported = export_items(args.export, args.server)
    missing = sorted(set(expected) - set(exported))
    extra = sorted(set(exported) - set(expected))
    differing = [key for key in sorted(set(expected) & set(exported)) if expected[key] != exported[key]]
    libraries = len({library for library, _ in expected})
    if not (missing or extra or differing) and expected:
        print("exact: %d items in %d libraries, every field (%s) equal to the server's listing"
              % (len(expected), libraries, ", ".join(FIELDS)))
        return 0
    print("NOT exact: the server lists %d items, the export has %d; %d missing, %d extra, %d differ"
          % (len(expected), len(exported), len(missing), len(extra), len(differing)))
    for key in missing[:5]:
        print("  missing %s/%s: %s" % (key[0], key[1], json.dumps(expected[key], sort_keys=True)))
    for key in extra[:5]:
        print("  extra   %s/%s: %s" % (key[0], key[1], json.dumps(exported[key], sort_keys=True)))
    for key in differing[:5]:
        fields = [f for f in FIELDS if expected[key][f] != exported[key][f]]
        print("  differs %s/%s: %s" % (key[0], key[1], ", ".join(
            "%s server=%r export=%r" % (f, expected[key][f], exported[key][f]) for f in fields)))
    return 1


def status_document():
    """/api/status, or None while the page is not up."""
    try:
        return get_json(STATUS_URL, timeout=10)
    except (OSError, ValueError):
        return None


def server_status(name):
    """The server's entry in /api/status, or None while the page is not up."""
    for server in (status_document() or {}).get("servers", []):
        if server.get("name") == name:
            return server
    return None


def server_names(document):
    return [server.get("name") for server in document.get("servers", [])]


def wait_listed(args):
    """Returns once /api/status lists exactly these servers."""
    wanted = args.servers.split(",")
    deadline = time.monotonic() + args.timeout
    document = None
    while time.monotonic() < deadline:
        document = status_document()
        if document is not None and server_names(document) == wanted:
            reload = (document.get("daemon") or {}).get("reload") or {}
            print("listed %s; the reload added [%s], needs a restart for [%s]" % (
                ", ".join(wanted), ", ".join(reload.get("added", [])), ", ".join(reload.get("needs_restart", []))))
            return 0
        time.sleep(0.5)
    print("not listed after %d s: %s" % (args.timeout, "no answer" if document is None else server_names(document)))
    return 1


def stored_items(server):
    return sum(int(library.get("items") or 0) for library in server.get("libraries", []))


def summary(server):
    if server is None:
        return "the status page does not answer or does not list the server"
    libraries = ", ".join("%s %s %s items" % (library.get("title"), library.get("state"), library.get("items"))
                          for library in server.get("libraries", []))
    live = server.get("live") or {}
    return "state=%s last_success_at=%s last_error=%r next_run_at=%s libraries: [%s]" % (
        server.get("state"), server.get("last_success_at"), server.get("last_error"),
        live.get("next_run_at"), libraries or "none")


def wait_mid(args):
    """Returns once a library of a first sync is part-way: at least `fraction`
    of the items the server lists for it are stored, but not all."""
    listed = {}
    for library, _ in plex_listing(args.plex, args.token):
        listed[library] = listed.get(library, 0) + 1
    deadline = time.monotonic() + args.timeout
    server = None
    while time.monotonic() < deadline:
        server = server_status(args.server)
        if server is not None:
            if server.get("last_success_at") is not None:
                print("the sync finished before the cut point (%s): use more --items" % summary(server))
                return 1
            for library in server.get("libraries", []):
                total = listed.get(text(library.get("id")), 0)
                stored = int(library.get("items") or 0)
                if total and args.fraction * total <= stored < total:
                    print("mid-sync: %s has %d of its %d items stored, %d of %d in all (%s)" % (
                        library.get("title"), stored, total, stored_items(server), sum(listed.values()),
                        summary(server)))
                    return 0
        time.sleep(0.3)
    print("no library got part-way within %d s: %s" % (args.timeout, summary(server)))
    return 1


def synced(server):
    libraries = server.get("libraries", [])
    return (server.get("last_success_at") is not None and libraries
            and all(library.get("state") == "idle" for library in libraries))


def wait_synced(args):
    started = time.monotonic()
    deadline = started + args.timeout
    while time.monotonic() < deadline:
        server = server_status(args.server)
        if server is not None and synced(server):
            print("synced %.0f s after waiting began: %s" % (time.monotonic() - started, summary(server)))
            return 0
        time.sleep(2)
    print("not synced after %d s: %s" % (args.timeout, summary(server_status(args.server))))
    return 1


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    count = commands.add_parser("listing-count")
    count.add_argument("--plex", required=True)
    count.add_argument("--token", required=True)
    check = commands.add_parser("compare")
    check.add_argument("--plex", required=True)
    check.add_argument("--token", required=True)
    check.add_argument("--export", required=True)
    check.add_argument("--server", required=True)
    mid = commands.add_parser("wait-mid")
    mid.add_argument("--plex", required=True)
    mid.add_argument("--token", required=True)
    mid.add_argument("--server", required=True)
    mid.add_argument("--fraction", type=float, default=0.4)
    mid.add_argument("--timeout", type=int, default=300)
    done = commands.add_parser("wait-synced")
    done.add_argument("--server", required=True)
    done.add_argument("--timeout", type=int, default=300)
    show = commands.add_parser("server-summary")
    show.add_argument("--server", required=True)
    commands.add_parser("server-names")
    listed = commands.add_parser("wait-listed")
    listed.add_argument("--servers", required=True)
    listed.add_argument("--timeout", type=int, default=60)
    args = parser.parse_args()
    if args.command == "listing-count":
        print(len(plex_listing(args.plex, args.token)))
        return 0
    if args.command == "compare":
        return compare(args)
    if args.command == "wait-mid":
        return wait_mid(args)
    if args.command == "wait-synced":
        return wait_synced(args)
    if args.command == "server-names":
        document = status_document()
        print("no answer" if document is None else ",".join(server_names(document)) or "none")
        return 0
    if args.command == "wait-listed":
        return wait_listed(args)
    print(summary(server_status(args.server)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
