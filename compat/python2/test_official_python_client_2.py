"""The official Python backend client 2.0.2 (PyPI `trustcaptcha` 2.0.2, the older results API),
unmodified, against `trustcaptcha-server serve`: solved, refused, bypass-key, unknown, unfinished
and replayed verifications, each with the exception or fields the library documents; and a
same-hostname deployment (the hosted name, a TLS proxy, a private certificate authority).

The library has the hosted service's address written into it
(`https://api.trustcomponent.com/verifications/{id}/assessments`). The test points that host at
the server under test the way a network would: its HTTP transport (requests' adapter) sends
requests for that host to the server, the library's code untouched.

Run by scripts/test.sh; needs the server binary (TRUSTCAPTCHA_SERVER_BIN) built first.
"""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

import requests
from trustcaptcha.captcha_manager import (
    CaptchaManager,
    SecretKeyInvalidException,
    VerificationNotFinishedException,
    VerificationNotFoundException,
    VerificationTokenInvalidException,
)

SERVER = os.environ.get("TRUSTCAPTCHA_SERVER_BIN", "target/debug/trustcaptcha-server")
HOSTED = "https://api.trustcomponent.com"
SITE_KEY = "6b1d2c3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
BLOCKED_SITE_KEY = "7c2e3d4f-5a6b-4c7d-9e8f-0a1b2c3d4e5f"
SECRET = "ak_python_two_0123456789abcdef"
BLOCKED_SECRET = "ak_python_two_blocked_0123456789"
BYPASS = "bypass_python_two_0123456789"

CONFIG = f"""
[server]
public_url = "{HOSTED}"

[store]
url = "memory://"

[[sites]]
name = "shop"
site_key = "{SITE_KEY}"
api_keys = ["{SECRET}"]
bypass_keys = ["{BYPASS}"]
difficulty = 4
tasks = 2

[[sites]]
name = "blocked"
site_key = "{BLOCKED_SITE_KEY}"
api_keys = ["{BLOCKED_SECRET}"]
difficulty = 4
tasks = 2
block_ips = ["127.0.0.1"]
"""


class ToServerUnderTest(requests.adapters.HTTPAdapter):
    """Sends what is addressed to the hosted service to the server under test."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def send(self, request, **kwargs):
        request.url = self.target + request.url[len(HOSTED):]
        return super().send(request, **kwargs)


class OfficialPythonClient2(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.TemporaryDirectory()
        config = os.path.join(cls.directory.name, "server.toml")
        with open(config, "w") as file:
            file.write(CONFIG)
        cls.server = subprocess.Popen(
            [SERVER, "serve", "--config", config, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        first = cls.server.stdout.readline()
        cls.url = re.search(r"listening on (http://\S+)", first).group(1)
        # Every session requests makes (the library calls requests.get) gets the adapter.
        cls.original_init = requests.Session.__init__
        target = cls.url

        def init(session, *args, **kwargs):
            cls.original_init(session, *args, **kwargs)
            session.mount(HOSTED, ToServerUnderTest(target))

        requests.Session.__init__ = init

    @classmethod
    def tearDownClass(cls):
        requests.Session.__init__ = cls.original_init
        cls.server.send_signal(signal.SIGTERM)
        cls.server.wait(timeout=10)
        cls.directory.cleanup()

    def solve(self, site_key):
        return subprocess.run(
            [SERVER, "solve", "--api-url", self.url, "--site-key", site_key],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def create(self, body):
        request = urllib.request.Request(
            f"{self.url}/v2/verifications",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            return json.load(response)

    def test_a_solved_verification_once(self):
        token = self.solve(SITE_KEY)
        decoded = json.loads(base64.b64decode(token))
        self.assertEqual(decoded["apiEndpoint"], HOSTED)
        result = CaptchaManager.get_verification_result(SECRET, token)
        self.assertTrue(result.verificationPassed)
        self.assertEqual(str(result.verificationId), decoded["verificationId"])
        self.assertEqual(result.reason, "CALCULATED")
        self.assertEqual(result.mode, "STANDARD")
        self.assertEqual(result.ipAddress, "127.0.0.1")
        self.assertTrue(0 <= result.score <= 1)
        self.assertTrue(result.creationTimestamp and result.releaseTimestamp)
        self.assertTrue(result.retrievalTimestamp)
        # Received once: the replay is 410, which this library reports as a runtime error.
        with self.assertRaisesRegex(RuntimeError, "410"):
            CaptchaManager.get_verification_result(SECRET, token)

    def test_a_refused_verification(self):
        result = CaptchaManager.get_verification_result(
            BLOCKED_SECRET, self.solve(BLOCKED_SITE_KEY)
        )
        self.assertFalse(result.verificationPassed)
        self.assertEqual(result.reason, "CUSTOM_BLOCK_LIST")
        self.assertEqual(result.score, 1)

    def test_a_bypass_key(self):
        created = self.create({"siteKey": SITE_KEY, "widget": {"bypassToken": BYPASS}})
        token = created["finished"]["verificationToken"]
        result = CaptchaManager.get_verification_result(SECRET, token)
        self.assertTrue(result.verificationPassed)
        self.assertEqual(result.reason, "BYPASS_KEY")
        self.assertEqual(result.score, 0)

    def test_unknown_unfinished_and_wrong_key(self):
        unknown = base64.b64encode(
            json.dumps(
                {"apiEndpoint": HOSTED, "verificationId": "00000000-0000-4000-8000-000000000123"}
            ).encode()
        ).decode()
        with self.assertRaises(VerificationNotFoundException):
            CaptchaManager.get_verification_result(SECRET, unknown)
        pending = self.create({"siteKey": SITE_KEY})["challenge"]["verificationId"]
        unfinished = base64.b64encode(
            json.dumps({"apiEndpoint": HOSTED, "verificationId": pending}).encode()
        ).decode()
        with self.assertRaises(VerificationNotFinishedException):
            CaptchaManager.get_verification_result(SECRET, unfinished)
        with self.assertRaises(SecretKeyInvalidException):
            CaptchaManager.get_verification_result("ak_not_a_key_0123456789", unfinished)
        with self.assertRaises(VerificationTokenInvalidException):
            CaptchaManager.get_verification_result(SECRET, "not base64 at all")


NGINX = """
daemon off;
worker_processes 1;
error_log {dir}/error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name api.trustcomponent.com;
    ssl_certificate {dir}/server.pem;
    ssl_certificate_key {dir}/server.key;
    location / {{
      proxy_pass {upstream};
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SameHostname(unittest.TestCase):
    """A same-hostname deployment, as a network without the hosted service sets it up for
    clients that cannot be pointed elsewhere: the hosted name resolves to a TLS proxy in front
    of the server (split-horizon DNS; here the test's name resolution), whose certificate comes
    from a private authority the backend trusts (`REQUESTS_CA_BUNDLE`). The library runs
    unmodified, over real TLS, to `https://api.trustcomponent.com`."""

    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.TemporaryDirectory()
        dir = cls.directory.name
        openssl = lambda *args: subprocess.run(
            ["openssl", *args], check=True, capture_output=True, cwd=dir
        )
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=Test private CA", "-keyout", "ca.key", "-out", "ca.pem")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=api.trustcomponent.com",
                "-keyout", "server.key", "-out", "server.csr")
        with open(os.path.join(dir, "san.ext"), "w") as file:
            file.write("subjectAltName=DNS:api.trustcomponent.com\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.pem")
        config = os.path.join(dir, "server.toml")
        with open(config, "w") as file:
            file.write(CONFIG.replace(
                "[server]", '[server]\ntrusted_proxies = ["127.0.0.1/32"]\n'
                'client_address_header = "x-forwarded-for"'
            ))
        cls.server = subprocess.Popen(
            [SERVER, "serve", "--config", config, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        cls.url = re.search(r"listening on (http://\S+)", cls.server.stdout.readline()).group(1)
        cls.port = free_port()
        with open(os.path.join(dir, "nginx.conf"), "w") as file:
            file.write(NGINX.format(dir=dir, port=cls.port, upstream=cls.url))
        cls.nginx = subprocess.Popen(
            ["nginx", "-p", dir, "-e", os.path.join(dir, "error.log"),
             "-c", os.path.join(dir, "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or cls.nginx.poll() is not None:
                    raise
                time.sleep(0.05)
        # Split-horizon DNS, for this process: the hosted name is the proxy.
        cls.original_getaddrinfo = socket.getaddrinfo
        port = cls.port

        def getaddrinfo(host, service, *args, **kwargs):
            if host == "api.trustcomponent.com":
                return cls.original_getaddrinfo("127.0.0.1", port, *args, **kwargs)
            return cls.original_getaddrinfo(host, service, *args, **kwargs)

        socket.getaddrinfo = getaddrinfo

    @classmethod
    def tearDownClass(cls):
        socket.getaddrinfo = cls.original_getaddrinfo
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
        cls.nginx.kill()
        cls.nginx.wait(timeout=10)
        cls.server.send_signal(signal.SIGTERM)
        cls.server.wait(timeout=10)
        cls.directory.cleanup()

    def test_the_unmodified_client_reaches_the_server_under_the_hosted_name(self):
        token = subprocess.run(
            [SERVER, "solve", "--api-url", self.url, "--site-key", SITE_KEY],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        # Without the private authority the certificate is refused: TLS is really checked.
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
        with self.assertRaises(RuntimeError):
            CaptchaManager.get_verification_result(SECRET, token)
        os.environ["REQUESTS_CA_BUNDLE"] = os.path.join(self.directory.name, "ca.pem")
        result = CaptchaManager.get_verification_result(SECRET, token)
        self.assertTrue(result.verificationPassed)
        self.assertEqual(result.reason, "CALCULATED")


if __name__ == "__main__":
    unittest.main(verbosity=2)
