"""Bank A of the HTTP quick start: a branch service for DTM's HTTP protocol written with
nothing but Python's standard library. The coordinator POSTs the step's payload (JSON) to
    /api/TransOut             take `amount` from the account (a saga's action)
    /api/TransOutCompensate   give it back (its compensation)
with ?gid=..&trans_type=..&branch_id=..&op=.. in the URL, and reads the answer as DTM does:
200 {"dtm_result":"SUCCESS"}, 409 {"dtm_result":"FAILURE"} (refuse: roll back), 425
{"dtm_result":"ONGOING"} (not yet: ask again). Each call is printed.

    /usr/bin/python3 client/examples/http/busi_a.py --port 8081
A payload with "result": "FAILURE" makes TransOut refuse. A real service would apply each
call at most once (the coordinator calls at least once): see the branch barrier.
"""
import argparse
import http.server
import json
import urllib.parse


class BankA(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the coordinator reuses its connections

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        print("bank A: %-22s gid=%s branch_id=%s op=%s body=%s" % (
            url.path, query.get("gid"), query.get("branch_id"), query.get("op"), body),
            flush=True)
        try:
            payload = json.loads(body or "{}")
        except ValueError:
            return self.reply(400, {"message": "the body is not JSON"})
        if url.path == "/api/TransOut":
            if payload.get("result") == "FAILURE":
                return self.reply(409, {"dtm_result": "FAILURE", "message": "not enough money"})
            return self.reply(200, {"dtm_result": "SUCCESS"})
        if url.path == "/api/TransOutCompensate":
            return self.reply(200, {"dtm_result": "SUCCESS"})
        return self.reply(404, {"message": "no such route: " + url.path})

    def reply(self, status, answer):
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass  # each call is printed above


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), BankA)
    print("bank A listening on port %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
