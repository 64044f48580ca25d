#!/usr/bin/python3
"""dtmd's admin page in a real browser: headless Chromium driven by Selenium (Debian's chromium,
chromium-driver and python3-selenium) against a real dtmd on SQLite and a real HTTP branch
service whose action always fails with HTTP 500, retried a minute later, so that the saga waits.

The page lists it, filters by status, opens it (branches, the branch's error, the timeline),
"Retry now" calls the branch again at once, the force-stop dialog insists on a reason and ends
the saga as FAILED; an unknown page or transaction shows an error; payload bytes appear only
while "Show payloads" is on; the page asks for a token when dtmd wants one. No JavaScript error
or Content-Security-Policy violation may show in the browser's console.

Usage: admin_page_test.py --dtmd PATH [--screenshot PNG]   (PNG: the transaction page)
"""
import argparse
import base64
import http.server
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from e2e_support import check, dtmd_argv, run, start, stop

parser = argparse.ArgumentParser()
parser.add_argument("--dtmd", required=True)
parser.add_argument("--screenshot", help="save a PNG of the transaction page to this path")
args = parser.parse_args()

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (NoSuchElementException,  # noqa: E402
                                        StaleElementReferenceException)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

HTTP_PORT = r"on HTTP port (\d+)"  # dtmd's line once its HTTP server listens
PAYLOAD = '{"sku":"PAYLOAD-7f3e-visible-on-request","qty":2}'
ERROR_TEXT = "inventory service is down (test)"
REASON = "refunded by hand (test)"
TOKEN = "ops-token-0123456789abcdef"
WAIT = 30  # seconds: every wait on the page has this deadline


class Branches(http.server.BaseHTTPRequestHandler):
    """The HTTP branch service: /busi/Reserve answers 500 (a transient error: dtmd retries),
    everything else DTM's SUCCESS. Records the gid of every call."""
    protocol_version = "HTTP/1.1"
    calls = []
    lock = threading.Lock()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with Branches.lock:
            Branches.calls.append((url.path, query.get("gid", "")))
        if url.path == "/busi/Reserve":
            status, body = 500, ERROR_TEXT.encode()
        else:
            status, body = 200, b'{"dtm_result":"SUCCESS"}'
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if status == 500 else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

    @staticmethod
    def count(path, gid):
        with Branches.lock:
            return sum(1 for c in Branches.calls if c == (path, gid))


def post(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers=dict({"Content-Type": "application/json"},
                                              **(headers or {})))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def until(cond, seconds=WAIT):
    """Polls cond() (which may look at elements being replaced) until it is true or the
    deadline passes; returns its last answer."""
    deadline = time.time() + seconds
    while True:
        try:
            value = cond()
        except (StaleElementReferenceException, NoSuchElementException):
            value = None
        if value or time.time() >= deadline:
            return value
        time.sleep(0.05)


def browser(tmp):
    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--user-data-dir=" + os.path.join(tmp, "chromium")):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def text(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def action_row(driver):
    return driver.find_element(By.CSS_SELECTOR, '#branch-body tr[data-op="ACTION"]')


def attempts(driver):
    return int(action_row(driver).find_element(By.CSS_SELECTOR, ".attempts").text)


def console_problems(driver):
    """The console lines that are a script error or a blocked resource, and how many lines
    were read in all; an API answer with an error status (the 404 and 401 the test asks for)
    is not a problem, but proves that the console is read."""
    entries = driver.get_log("browser")
    out = []
    for entry in entries:
        message = entry.get("message", "")
        if "Failed to load resource" in message:
            continue
        if entry.get("level") == "SEVERE" or "Content Security Policy" in message:
            out.append(message)
    return out, len(entries)


def main():
    tmp = tempfile.mkdtemp(prefix="dtm-admin-page-")
    service = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Branches)
    threading.Thread(target=service.serve_forever, daemon=True).start()
    busi = "http://127.0.0.1:%d/busi/" % service.server_address[1]

    dtmd, port = start(dtmd_argv(args.dtmd, tmp, "--lease=2s", "--recovery_interval=200ms",
                                 "--verbose_errors"), "dtmd", tmp, HTTP_PORT)
    base = "http://127.0.0.1:%s" % port
    stamp = str(int(time.time() * 1000))
    done_gid, wait_gid = "page-done-" + stamp, "page-wait-" + stamp

    status, answer = post(base + "/api/dtmsvr/submit", {
        "gid": done_gid, "trans_type": "saga", "wait_result": True,
        "steps": [{"action": busi + "Ship", "compensate": busi + "Unship"}],
        "payloads": ["{}"]})
    check(status == 200, "a saga that succeeds: %s" % answer)
    status, answer = post(base + "/api/dtmsvr/submit", {
        "gid": wait_gid, "trans_type": "saga", "retry_interval": 60,
        "steps": [{"action": busi + "Reserve", "compensate": busi + "Release"}],
        "payloads": [PAYLOAD]})
    check(status == 200, "a saga whose action fails transiently is submitted: %s" % answer)
    check(until(lambda: Branches.count("/busi/Reserve", wait_gid) >= 1),
          "its action was called once and failed")

    driver = browser(tmp)
    try:
        # The list: both sagas, newest first.
        driver.get(base + "/")
        rows = lambda: [r.get_attribute("data-gid")  # noqa: E731
                        for r in driver.find_elements(By.CSS_SELECTOR, "#list-body tr[data-gid]")]
        check(until(lambda: set(rows()) == {done_gid, wait_gid}),
              "the list shows both transactions: %s" % rows())
        check(PAYLOAD not in driver.page_source and
              base64.b64encode(PAYLOAD.encode()).decode() not in driver.page_source,
              "no payload bytes in the list page")

        # Filtered by status.
        Select(driver.find_element(By.ID, "f-status")).select_by_visible_text("SUBMITTED")
        driver.find_element(By.ID, "f-apply").click()
        check(until(lambda: rows() == [wait_gid]), "filtered by SUBMITTED: only the waiting one")
        check("status=SUBMITTED" in driver.current_url, "the filter is in the page's address")
        Select(driver.find_element(By.ID, "f-status")).select_by_visible_text("SUCCEEDED")
        driver.find_element(By.ID, "f-apply").click()
        check(until(lambda: rows() == [done_gid]), "filtered by SUCCEEDED: only the done one")

        # Paging: one a page, newest first.
        driver.get(base + "/#/?page_size=1")
        check(until(lambda: rows() == [wait_gid]), "page 1 of 1-transaction pages: the newest")
        until(lambda: driver.find_element(By.ID, "page-next").is_enabled())
        driver.find_element(By.ID, "page-next").click()
        check(until(lambda: rows() == [done_gid] and
                    text(driver, "#page-number") == "page 2"), "Next page: the one before")
        check(until(lambda: not driver.find_element(By.ID, "page-next").is_enabled()),
              "the last page has no next")
        driver.find_element(By.ID, "page-prev").click()
        check(until(lambda: rows() == [wait_gid] and text(driver, "#page-number") == "page 1"),
              "Previous page goes back")
        driver.find_element(By.ID, "f-gid").send_keys("page-wait-")
        driver.find_element(By.ID, "f-apply").click()
        check(until(lambda: rows() == [wait_gid]), "filtered by gid prefix")

        # The transaction.
        until(lambda: driver.find_element(By.LINK_TEXT, wait_gid)).click()
        check(until(lambda: text(driver, "#txn-gid") == wait_gid),
              "the link opens the transaction's page")
        check(until(lambda: text(driver, "#txn-status") == "SUBMITTED"), "its status: SUBMITTED")
        branch_rows = until(lambda: driver.find_elements(By.CSS_SELECTOR, "#branch-body tr[data-op]"))
        check(len(branch_rows or []) == 2, "both branches: the action and its compensation")
        check(until(lambda: ERROR_TEXT in action_row(driver).find_element(
            By.CSS_SELECTOR, ".last-error").text), "the action's last error is shown")
        check(until(lambda: attempts(driver) >= 1), "and its attempts")
        check(until(lambda: action_row(driver).find_element(By.CSS_SELECTOR, ".target").text ==
                    busi + "Reserve"), "and its target")
        timeline = text(driver, "#timeline")
        check("created" in timeline and "next retry" in timeline,
              "the timeline shows creation and the next retry: %r" % timeline)
        check(PAYLOAD not in driver.page_source, "no payload bytes on the transaction's page")

        # Retry now: the branch is called again at once, not in a minute.
        before = attempts(driver)
        calls = Branches.count("/busi/Reserve", wait_gid)
        driver.find_element(By.ID, "retry-now").click()
        check(until(lambda: attempts(driver) > before),
              "after Retry now the attempts grow (%d before)" % before)
        check(Branches.count("/busi/Reserve", wait_gid) > calls, "the branch was called again")
        check(until(lambda: "Retry requested" in text(driver, "#notice")), "a notice says so")

        # Payloads only on request.
        driver.find_element(By.ID, "show-payloads").click()
        check(until(lambda: PAYLOAD in text(driver, "#branch-body")),
              "Show payloads shows the payload as text")
        driver.find_element(By.ID, "show-payloads").click()
        check(until(lambda: PAYLOAD not in driver.page_source), "and hides it again")

        if args.screenshot:
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(args.screenshot)
            print("screenshot:", args.screenshot, flush=True)

        # Force stop: the dialog wants a reason.
        driver.find_element(By.ID, "force-stop").click()
        dialog = driver.find_element(By.ID, "force-stop-dialog")
        check(until(lambda: dialog.get_attribute("open") is not None), "Force stop opens a dialog")
        confirm = driver.find_element(By.ID, "fs-confirm")
        check(not confirm.is_enabled(), "no reason: the confirmation is disabled")
        reason = driver.find_element(By.ID, "fs-reason")
        reason.send_keys("   ")
        check(not confirm.is_enabled(), "blanks are no reason")
        reason.send_keys(REASON)
        check(confirm.is_enabled(), "a reason enables it")
        confirm.click()
        check(until(lambda: text(driver, "#txn-status") == "FAILED"),
              "the saga is FAILED after the force stop")
        check(until(lambda: dialog.get_attribute("open") is None), "the dialog closed")
        check(REASON in text(driver, '#txn-summary dd[data-field="rollback_reason"]'),
              "the reason is its rollback reason")
        check(not driver.find_element(By.ID, "retry-now").is_enabled() and
              not driver.find_element(By.ID, "force-stop").is_enabled(),
              "a finished transaction offers no action")
        status, t = get(base + "/v1/transactions/" + wait_gid)
        check(status == 200 and t.get("status") == "FAILED", "the API agrees: %s" % t.get("status"))

        # Errors are shown.
        driver.get(base + "/#/nowhere")
        check(until(lambda: "no such page" in text(driver, "#error")),
              "an unknown page shows an error")
        driver.get(base + "/#/tx/no-such-gid")
        check(until(lambda: "NOT_FOUND" in text(driver, "#error") and
                    "no-such-gid" in text(driver, "#error")),
              "an unknown transaction shows NOT_FOUND")
        driver.get(base + "/#/?page_size=100&created_after=2026-13-99")
        check(until(lambda: "INVALID_ARGUMENT" in text(driver, "#error") and
                    "created_after" in text(driver, "#error")),
              "a bad filter shows the API's INVALID_ARGUMENT")
        problems, read = console_problems(driver)
        check(read > 0 and not problems,
              "no script error or CSP violation among the console's %d lines: %s" %
              (read, problems))
    finally:
        driver.quit()
    check(stop(dtmd) == 0, "dtmd stops cleanly")

    # With --auth_tokens_file the page asks for a token, keeps it for the tab, and sends it.
    tokens = os.path.join(tmp, "tokens")
    with open(tokens, "w") as f:
        f.write("%s ops admin\n" % TOKEN)
    secured = os.path.join(tmp, "secured")
    os.mkdir(secured)
    dtmd, port = start(dtmd_argv(args.dtmd, secured, "--auth_tokens_file=" + tokens),
                       "dtmd-secured", tmp, HTTP_PORT)
    base = "http://127.0.0.1:%s" % port
    status, answer = post(base + "/api/dtmsvr/submit", {
        "gid": "secured-" + stamp, "trans_type": "saga", "wait_result": True,
        "steps": [{"action": busi + "Ship", "compensate": busi + "Unship"}], "payloads": ["{}"]},
        headers={"Authorization": "Bearer " + TOKEN})
    check(status == 200, "a saga on the secured dtmd: %s" % answer)
    driver = browser(tmp)
    try:
        driver.get(base + "/")
        form = driver.find_element(By.ID, "token-form")
        check(until(lambda: form.is_displayed() and "UNAUTHENTICATED" in text(driver, "#error")),
              "without a token the page says UNAUTHENTICATED and asks for one")
        driver.find_element(By.ID, "token").send_keys(TOKEN + "\n")
        check(until(lambda: driver.find_elements(
            By.CSS_SELECTOR, '#list-body tr[data-gid="secured-%s"]' % stamp)),
            "with the token the list loads")
        check(not form.is_displayed() and not driver.find_element(By.ID, "error").is_displayed(),
              "the form and the error are gone")
        check(driver.execute_script("return sessionStorage.getItem('dtmd-admin-token')") == TOKEN,
              "the token is kept in sessionStorage")
        check(TOKEN not in driver.page_source, "and not in the page")
    finally:
        driver.quit()
    check(stop(dtmd) == 0, "the secured dtmd stops cleanly")
    service.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run(main)
