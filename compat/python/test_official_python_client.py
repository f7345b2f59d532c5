"""The official Python backend client (PyPI `trustcaptcha` 3.0.0), unmodified, against
`trustcaptcha-server serve --sandbox`: its own test suite's fixtures, and a real verification
solved with `trustcaptcha-server solve`.

Run by scripts/test.sh; needs the server binary (TRUSTCAPTCHA_SERVER_BIN) built first.
"""

import base64
import os
import re
import signal
import subprocess
import unittest

from trustcaptcha.trust_captcha import (
    ApiKeyInvalidException,
    TrustCaptcha,
    VerificationNotFinishedException,
    VerificationNotFoundException,
    VerificationResultExpiredException,
    VerificationResultRetrievalLimitReachedException,
)

SERVER = os.environ.get("TRUSTCAPTCHA_SERVER_BIN", "target/debug/trustcaptcha-server")
SANDBOX_SITE_KEY = "00000000-0000-0000-0000-000000000000"
SANDBOX_API_KEY = "ak_" + "x" * 49


def fixture(n):
    body = '{"verificationId":"00000000-0000-0000-0000-00000000000%d"}' % n
    return base64.b64encode(body.encode()).decode()


class OfficialPythonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = subprocess.Popen(
            [SERVER, "serve", "--sandbox", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        first = cls.server.stdout.readline()
        cls.url = re.search(r"listening on (http://\S+)", first).group(1)
        cls.client = TrustCaptcha(SANDBOX_API_KEY, api_host=cls.url)

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        cls.server.wait(timeout=10)

    def test_fixture_results(self):
        result = self.client.get_verification_result(fixture(0))
        self.assertTrue(result.verification_passed)
        for n, error in [
            (1, VerificationNotFoundException),
            (2, VerificationNotFinishedException),
            (3, VerificationResultExpiredException),
            (4, VerificationResultRetrievalLimitReachedException),
        ]:
            with self.assertRaises(error):
                self.client.get_verification_result(fixture(n))

    def test_invalid_key(self):
        with self.assertRaises(ApiKeyInvalidException):
            TrustCaptcha("ak_invalid", api_host=self.url).get_verification_result(fixture(0))

    def test_real_verification(self):
        token = subprocess.run(
            [SERVER, "solve", "--api-url", self.url, "--site-key", SANDBOX_SITE_KEY],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        result = self.client.get_verification_result(token)
        self.assertTrue(result.verification_passed)
        self.assertEqual(result.ip_address, "127.0.0.1")
        with self.assertRaises(VerificationResultRetrievalLimitReachedException):
            self.client.get_verification_result(token)


if __name__ == "__main__":
    unittest.main(verbosity=2)
