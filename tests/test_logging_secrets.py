"""Nothing secret reaches the log files."""

import logging

import pytest

from simulator.logging_setup import register_secret, scrub, setup_logging

PASSWORD = "Hunter2-correct-horse"
API_KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.mark.parametrize(
    ("text", "forbidden"),
    [
        (f"connecting to mongodb://alice:{PASSWORD}@db.example.net/", PASSWORD),
        (f"mongodb+srv://alice:{PASSWORD}@cluster0.example.mongodb.net/x", PASSWORD),
        (f"headers: Authorization: Bearer {API_KEY}", API_KEY),
        (f"calling with api_key={API_KEY}", API_KEY),
        (f"password: {PASSWORD}", PASSWORD),
        (f"key is {API_KEY} here", API_KEY[8:]),
    ],
)
def test_scrub_masks_secret_shapes(text: str, forbidden: str) -> None:
    assert forbidden not in scrub(text)


def test_log_file_never_contains_registered_secrets(tmp_path) -> None:
    log_file = setup_logging(tmp_path)
    register_secret(PASSWORD)
    log = logging.getLogger("simulator.test")
    log.warning("login with %s failed", PASSWORD)
    log.info("opaque value %s", PASSWORD.upper().lower())  # the same string, built at run time
    try:
        raise RuntimeError(f"driver said: bad auth for {PASSWORD}")
    except RuntimeError:
        log.exception("connection failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    content = log_file.read_text()
    assert "login with *** failed" in content
    assert "connection failed" in content and "RuntimeError" in content
    assert PASSWORD not in content
