"""The image downloader against a local HTTP server: retries, failures with reasons, validation, resume, resize."""
import gzip
import io
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from converters_support import FIXTURES, read_dataset, run_convert
from recbole_mllmr1.dataset_converters.images import (
    ALREADY_PRESENT,
    FAILED,
    STORED,
    ImageSettings,
    ImageTask,
    fetch_images,
)

FAST = ImageSettings(workers=4, timeout=2.0, retries=2, backoff=0.01)


def png_bytes(size=(64, 32), color="blue"):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


class ImageServer(ThreadingHTTPServer):
    """Serves a handful of well-behaved and misbehaving image URLs, counting requests per path."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ImageRequestHandler)
        self.image = png_bytes()
        self.requests = Counter()
        self.lock = threading.Lock()

    def url(self, path):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class ImageRequestHandler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the test output quiet
        pass

    def send_body(self, status, body, content_type="image/png"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests[self.path] += 1
            count = server.requests[self.path]
        if self.path.startswith("/good"):
            self.send_body(200, server.image)
        elif self.path == "/slow.png":
            time.sleep(0.3)
            self.send_body(200, server.image)
        elif self.path == "/hang.png":
            time.sleep(1.5)
            try:
                self.send_body(200, server.image)
            except OSError:  # the client has given up already
                pass
        elif self.path == "/flaky.png" and count == 1:
            self.send_body(500, b"try again", "text/plain")
        elif self.path == "/flaky.png":
            self.send_body(200, server.image)
        elif self.path == "/unavailable.png":
            self.send_body(503, b"down", "text/plain")
        elif self.path == "/truncated.png":
            self.send_body(200, server.image[: len(server.image) // 2])
        elif self.path == "/not-an-image.png":
            self.send_body(200, b"<html>this is not an image</html>")
        else:
            self.send_body(404, b"not found", "text/plain")


@pytest.fixture
def server():
    image_server = ImageServer()
    thread = threading.Thread(target=image_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield image_server
    image_server.shutdown()
    image_server.server_close()
    thread.join(timeout=5)


def tasks_for(server, folder, paths):
    return [
        ImageTask(path.strip("/").split(".")[0], server.url(path), folder / f"{index}.jpg")
        for index, path in enumerate(paths)
    ]


def test_each_outcome_and_its_reason(server, tmp_path):
    paths = ["/good.png", "/slow.png", "/missing.png", "/flaky.png", "/unavailable.png", "/truncated.png", "/not-an-image.png"]
    outcomes = {outcome.task.item_id: outcome for outcome in fetch_images(tasks_for(server, tmp_path, paths), FAST)}
    assert {item: outcome.status for item, outcome in outcomes.items()} == {
        "good": STORED, "slow": STORED, "missing": FAILED, "flaky": STORED,
        "unavailable": FAILED, "truncated": FAILED, "not-an-image": FAILED,
    }
    assert outcomes["missing"].reason == "HTTP 404 Not Found"
    assert server.requests["/missing.png"] == 1  # a 404 is not retried
    assert server.requests["/flaky.png"] == 2  # a 500 is
    assert outcomes["unavailable"].reason == "HTTP 503 Service Unavailable (gave up after 3 attempts)"
    assert server.requests["/unavailable.png"] == 3
    assert outcomes["truncated"].reason.startswith("not a valid image")
    assert outcomes["not-an-image"].reason.startswith("not a valid image")
    for item in ("good", "slow", "flaky"):
        with Image.open(outcomes[item].task.destination) as image:
            assert image.format == "JPEG" and image.size == (64, 32)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["0.jpg", "1.jpg", "3.jpg"]  # no temporary files


def test_timeouts_are_retried_then_reported(server, tmp_path):
    settings = ImageSettings(workers=1, timeout=0.2, retries=1, backoff=0.01)
    started = time.monotonic()
    [outcome] = fetch_images(tasks_for(server, tmp_path, ["/hang.png"]), settings)
    assert outcome.status == FAILED
    assert "timed out" in outcome.reason and "gave up after 2 attempts" in outcome.reason
    assert server.requests["/hang.png"] == 2
    assert time.monotonic() - started < 5


def test_second_run_downloads_nothing(server, tmp_path):
    tasks = tasks_for(server, tmp_path, ["/good-1.png", "/good-2.png", "/flaky.png"])
    assert [outcome.status for outcome in fetch_images(tasks, FAST)] == [STORED] * 3
    requests_after_first_run = sum(server.requests.values())
    assert [outcome.status for outcome in fetch_images(tasks, FAST)] == [ALREADY_PRESENT] * 3
    assert sum(server.requests.values()) == requests_after_first_run


def test_incomplete_file_on_disk_is_fetched_again(server, tmp_path):
    [task] = tasks_for(server, tmp_path, ["/good.png"])
    task.destination.write_bytes(png_bytes()[:20])
    assert fetch_images([task], FAST)[0].status == STORED
    with Image.open(task.destination) as image:
        image.load()


def test_resize_keeps_the_aspect_ratio(server, tmp_path):
    [task] = tasks_for(server, tmp_path, ["/good.png"])
    assert fetch_images([task], ImageSettings(max_side=16))[0].status == STORED
    with Image.open(task.destination) as image:
        assert image.size == (16, 8)
    assert fetch_images([task], ImageSettings(max_side=16))[0].status == ALREADY_PRESENT
    assert fetch_images([task], ImageSettings(max_side=8))[0].status == STORED  # a smaller size asks for a new copy


def test_conversion_downloads_images_and_resumes(server, tmp_path):
    meta_text = gzip.decompress((FIXTURES / "amazon2023" / "meta_Beauty.jsonl.gz").read_bytes())
    meta_lines = [json.loads(line) for line in meta_text.splitlines()]
    urls = {"B00YQ6X8EO": "/good-howard.png", "B081TJ8YS3": "/missing.png", "B09JS339BZ": "/flaky.png"}
    for record in meta_lines:
        if record["parent_asin"] in urls:
            url = server.url(urls[record["parent_asin"]])
            record["images"] = [{"thumb": None, "large": url, "variant": "MAIN", "hi_res": None}]
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps(record) + "\n" for record in meta_lines))
    out = tmp_path / "beauty"
    argv = ["amazon2023", "--reviews", FIXTURES / "amazon2023" / "Beauty.jsonl.gz", "--meta", meta, "--out", out,
            "--download-images", "--image-size", "32", "--image-retries", "2"]
    assert run_convert(*argv) == 0
    _, items, manifest = read_dataset(out)
    assert items["B00YQ6X8EO"]["image"] == "images/B00YQ6X8EO.jpg"
    assert items["B09JS339BZ"]["image"] == "images/B09JS339BZ.jpg"
    assert items["B081TJ8YS3"]["image"] == ""
    assert manifest["images"]["stored"] == 2
    assert manifest["images"]["failures"] == [
        {"item_id": "B081TJ8YS3", "source": server.url("/missing.png"), "reason": "HTTP 404 Not Found"}
    ]
    with Image.open(out / "images" / "B00YQ6X8EO.jpg") as image:
        assert image.size == (32, 16)

    requests_after_first_run = sum(server.requests.values())
    assert run_convert(*argv) == 0
    manifest = read_dataset(out)[2]
    assert (manifest["images"]["stored"], manifest["images"]["already_present"]) == (0, 2)
    assert sum(server.requests.values()) == requests_after_first_run + 1  # only the 404 is asked again
