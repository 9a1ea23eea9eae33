"""Debian's Firefox (firefox-esr), headless, driven over WebDriver BiDi: the W3C protocol Firefox speaks
itself on a websocket (--remote-debugging-port), so no geckodriver and no Playwright build of Firefox is
needed (Playwright's own BiDi driver asks for commands newer than Debian's ESR has).

Just what the tests need: open a tab, navigate, evaluate JavaScript (awaiting promises; results come back
as JSON), close a tab. The profile is fresh each time, with the fake camera on and no permission prompt.
"""

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox") or "/usr/bin/firefox-esr"
PREFS = {
    "media.navigator.streams.fake": True,  # a synthetic camera (a plain colour, no face)
    "media.navigator.permission.disabled": True,  # getUserMedia without asking
    # Firefox hides its addresses behind mDNS names (x.local) in a page not granted the camera; a user's
    # grant lifts that, a pref-granted fake camera does not, and no mDNS answers in a container: this
    # stands in for the grant.
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
}


class BiDiError(Exception):
    pass


class Firefox:
    """A headless Firefox and its BiDi session; close() ends both."""

    def __init__(self, timeout=60):
        self.profile = Path(tempfile.mkdtemp(prefix="facerec-firefox-"))
        (self.profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items())
        )
        # Its output goes to a file (a pipe nobody reads once it has started would fill and stop it).
        self.log = self.profile / "firefox.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [FIREFOX, "--headless", "--no-remote", "--profile", str(self.profile), "--remote-debugging-port", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: close() ends its helpers with it
            )
        self.ids = itertools.count(1)
        self.timeout = timeout
        self.closing = contextlib.ExitStack()
        try:
            self.socket = self.closing.enter_context(
                connect(f"{self._address(timeout)}/session", max_size=None, open_timeout=timeout)
            )
            self.command("session.new", capabilities={})
        except Exception:
            self.close()
            raise

    def _address(self, timeout):
        """The websocket Firefox listens on (it prints it on start; port 0 means one it chose)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            found = re.search(r"WebDriver BiDi listening on (ws://\S+)", self.log.read_text(errors="replace"))
            if found:
                return found.group(1).rstrip("/")
            time.sleep(0.1)
        raise BiDiError(
            f"{FIREFOX} did not start its WebDriver BiDi server: {self.log.read_text(errors='replace')[-2000:]}"
        )

    def command(self, method, **params):
        """Send a command and return its result (events that come meanwhile are not asked for)."""
        id = next(self.ids)
        self.socket.send(json.dumps({"id": id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=self.timeout))
            if message.get("id") != id:
                continue
            if message.get("type") == "error":
                raise BiDiError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message["result"]

    def new_tab(self, url):
        tab = Tab(self, self.command("browsingContext.create", type="tab")["context"])
        tab.goto(url)
        return tab

    def close(self):
        try:
            self.closing.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # what is left of it (content processes, crash helper)
            self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


class Tab:
    def __init__(self, firefox, context):
        self.firefox, self.context = firefox, context

    def goto(self, url):
        self.firefox.command("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (a promise is awaited), through JSON."""
        result = self.firefox.command(
            "script.evaluate",
            expression=f"(async () => JSON.stringify(await ({expression})))()",
            target={"context": self.context},
            awaitPromise=True,
        )
        if result["type"] == "exception":
            details = result["exceptionDetails"]
            raise BiDiError(f"{details.get('text')} (in: {expression[:200]})")
        value = result["result"].get("value")
        return None if value is None else json.loads(value)

    def wait_for(self, expression, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"not within {timeout} s in Firefox: {expression}")

    def close(self):
        self.firefox.command("browsingContext.close", context=self.context)
